"""Contrastive self-supervised pretraining of a deep backbone (SimCLR / CLMR).

Each step takes a batch of clips, cuts two views of each (random chunks of the same clip,
each transformed by the ``views`` augmentations), passes both through the backbone
(``ChunkClassifier.embed``) and a projection MLP, and minimises the NT-Xent loss: a
view must pick its partner out of the other ``2 * batch - 2`` views. The projection head
is dropped afterwards; the backbone is saved as a deep-system checkpoint with no classes,
which the ``ssl`` encoder family and the deep family's ``init`` read.

Views act on audio (``musicbench.augment`` for pitch, stretch, EQ and noise) and then pass
through the network's fixed front end, as the trainer's augmented chunks do. Each view is
seeded by the clip, the run's seed, the epoch and the view, so a resumed run draws the same
views as an uninterrupted one. A resume state is written atomically after every epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from musicbench.augment import TRANSFORMS, apply, seed_for
from musicbench.errors import ConfigError
from musicbench.runtime import atomic_write
from musicbench.systems.deep.inputs import FeatureBank
from musicbench.systems.deep.trainer import STRETCH_MARGIN, mixed_precision, optimise, warmup_cosine

if TYPE_CHECKING:
    from musicbench.systems.deep.netspec import NetSpec

VIEWS = ("crop", "gain", "polarity", *TRANSFORMS)
DEFAULT_VIEWS = ("crop", "gain", "polarity", "noise", "eq")  # pitch and stretch cost most on CPU
GAIN_DB = (-6.0, 0.0)
VERSION = 2  # bump when views or training change what a run learns: cached backbones are keyed by it


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """The views as a tuple in canonical order; an unknown name is an error listing the valid ones."""
    views = [views] if isinstance(views, str) else list(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ConfigError(f"views={views!r}: unknown view(s) {unknown}; valid: {', '.join(VIEWS)}")
    return tuple(v for v in VIEWS if v in views)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy of ``n`` positive pairs ``(z1[i], z2[i])``: each
    of the ``2n`` projections classifies its partner among the other ``2n - 1``."""
    z = nn.functional.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return nn.functional.cross_entropy(sim, target)


class ProjectionHead(nn.Sequential):
    """SimCLR's projection MLP: linear -> batch norm -> ReLU -> linear; dropped after pretraining."""

    def __init__(self, dims: int, hidden: int, out: int):
        super().__init__(nn.Linear(dims, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out))


def make_view(clip: np.ndarray, n: int, views: tuple[str, ...], sample_rate: int, seed: int) -> np.ndarray:
    """One augmented view of ``n`` samples from ``clip`` (the audio a view may be cut from).

    ``crop`` picks a random start (else the start of ``clip``); a clip shorter than the
    view lands at a random offset in it instead (a random shift, so short sounds such as
    single strokes still differ between views). The ``augment`` transforms run in their
    grammar's order, ``gain`` scales by a random gain in ``GAIN_DB`` and ``polarity``
    flips the sign half of the time. The same seed gives the same view.
    """
    rng = np.random.default_rng(seed)
    need = int(n * STRETCH_MARGIN) if "stretch" in views else n
    clip = np.asarray(clip, dtype=np.float32)
    if "crop" in views and len(clip) < n:
        y = np.zeros(need, dtype=np.float32)
        offset = int(rng.integers(0, n - len(clip) + 1))
        y[offset: offset + len(clip)] = clip
    else:
        start = int(rng.integers(0, max(len(clip) - need, 0) + 1)) if "crop" in views else 0
        y = clip[start: start + need]
    spec = "+".join(v for v in TRANSFORMS if v in views)
    if spec and len(y):
        y = apply(spec, y, sample_rate, int(rng.integers(2**32)))
    if "gain" in views:
        y = y * np.float32(10 ** (rng.uniform(*GAIN_DB) / 20))
    if "polarity" in views and rng.random() < 0.5:
        y = -y
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(y))] = y[:n]
    return out


@dataclass
class PretrainConfig:
    """How to pretrain; ``chunk_samples`` is the audio behind one view at the network's rate."""

    chunk_samples: int
    sample_rate: int
    epochs: int = 20
    batch_size: int = 32
    temperature: float = 0.1
    views: tuple[str, ...] = DEFAULT_VIEWS
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    projection_dim: int = 128
    seed: int = 0
    amp: bool | str = True  # see trainer.mixed_precision
    extra: dict[str, Any] = field(default_factory=dict)  # what else defines the run (backbone, data)

    def key(self) -> str:
        """Digest of everything that defines the run: a resume state must match it."""
        spec = {**asdict(self), "version": VERSION}
        return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


EpochLog = Callable[[dict[str, Any]], None]


class Pretrainer:
    """Pretrains ``net`` (a ``ChunkClassifier``) contrastively on audio clips.

    ``audio`` holds the clips' waveforms at the network's rate, ``frontend`` turns a batch
    of waveform views into the network's input (``DeepInput.module``) and ``chunk`` is the
    input frames of one view. ``history`` has one row per epoch (loss, seconds, clips/s,
    x real time).
    """

    def __init__(self, net: nn.Module, frontend: nn.Module, chunk: int, config: PretrainConfig,
                 device: torch.device):
        self.net, self.cfg, self.device, self.chunk = net.to(device), config, device, chunk
        self.frontend = frontend.to(device)
        torch.manual_seed(config.seed)
        self.proj = ProjectionHead(net.embedding_size, net.embedding_size, config.projection_dim).to(device)
        self.use_amp, self.amp_dtype, self.scaler = mixed_precision(device, config.amp)
        self.opt = torch.optim.AdamW([*self.net.parameters(), *self.proj.parameters()], lr=config.lr,
                                     weight_decay=config.weight_decay)
        self.history: list[dict[str, Any]] = []

    def _views(self, audio: FeatureBank, rows: np.ndarray, ids: list[str], epoch: int,
               rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views of each clip of ``rows``: without ``crop`` both from one random position."""
        cfg = self.cfg
        n = cfg.chunk_samples
        need = int(n * STRETCH_MARGIN) if "stretch" in cfg.views else n
        lengths = audio.lengths[rows]
        if "crop" in cfg.views:  # whole clips: each view crops (or shifts) its own chunk
            starts, ends = np.zeros(len(rows), dtype=np.int64), lengths
        else:
            starts = (rng.random(len(rows)) * (np.maximum(lengths - need, 0) + 1)).astype(np.int64)
            ends = np.full(len(rows), need)
        raw = audio.cut(rows, starts, int(ends.max()))[:, 0].cpu().numpy()
        clips = [raw[j, : ends[j]] for j in range(len(rows))]
        pair = []
        for v in ("a", "b"):
            views = np.stack([make_view(clips[j], n, cfg.views, cfg.sample_rate,
                                        seed_for(ids[r], str(cfg.seed), str(epoch), v))
                              for j, r in enumerate(rows.tolist())])
            with torch.no_grad():
                x = self.frontend(torch.from_numpy(views).to(self.device))
            pair.append(x[..., : self.chunk].float())
        return pair[0], pair[1]

    def batches(self, n_clips: int, rng: np.random.Generator):
        """Row indices per step: every clip once per epoch, at least two clips per batch."""
        order = rng.permutation(n_clips)
        size = self.cfg.batch_size
        cuts = list(range(0, n_clips, size))
        if len(cuts) > 1 and n_clips - cuts[-1] < 2:  # a lone last clip joins the previous batch
            cuts.pop()
        return [order[c: (cuts[i + 1] if i + 1 < len(cuts) else n_clips)] for i, c in enumerate(cuts)]

    def state(self, epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "key": self.cfg.key(), "net": self.net.state_dict(),
                "proj": self.proj.state_dict(), "opt": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "history": json.dumps(self.history)}

    def resume(self, path: Path) -> int:
        """Load a resume state written by an earlier run of the same config; the epochs done."""
        if not path.is_file():
            return 0
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["key"] != self.cfg.key():
            raise ConfigError(f"resume state {path} belongs to a different pretraining run (other "
                              "backbone, data or settings); use another --out or delete it")
        self.net.load_state_dict(state["net"])
        self.proj.load_state_dict(state["proj"])
        self.opt.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = json.loads(state["history"])
        return int(state["epoch"])

    def fit(self, audio: FeatureBank, ids: list[str], state_path: Path | None = None,
            on_epoch: EpochLog | None = None) -> Pretrainer:
        """Pretrain for ``cfg.epochs`` epochs (continuing from ``state_path`` where one was saved)."""
        cfg = self.cfg
        if len(audio) < 2:
            raise ConfigError(f"contrastive pretraining needs at least 2 clips (negatives), got {len(audio)}")
        done = self.resume(state_path) if state_path is not None else 0
        steps = len(self.batches(len(audio), np.random.default_rng(0)))
        total, warm = cfg.epochs * steps, max(1, int(cfg.warmup_epochs * steps))
        for epoch in range(done + 1, cfg.epochs + 1):
            rng = np.random.default_rng([cfg.seed, epoch])
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            self.net.train()
            self.proj.train()
            t0, losses, seen = time.perf_counter(), [], 0
            for step, rows in enumerate(self.batches(len(audio), rng)):
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr * warmup_cosine((epoch - 1) * steps + step, warm, total)
                a, b = self._views(audio, rows, ids, epoch, rng)
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                    z1, z2 = self.proj(self.net.embed(a)), self.proj(self.net.embed(b))
                loss = nt_xent(z1, z2, cfg.temperature)
                optimise(loss, self.opt, self.scaler)
                losses.append(loss.item() * len(rows))
                seen += len(rows)
            seconds = time.perf_counter() - t0
            row = {"epoch": epoch, "loss": sum(losses) / seen, "seconds": round(seconds, 3),
                   "clips_per_s": seen / seconds,
                   "x_realtime": 2 * seen * cfg.chunk_samples / cfg.sample_rate / seconds}
            self.history.append(row)
            if state_path is not None:
                buf = io.BytesIO()
                torch.save(self.state(epoch), buf)
                atomic_write(state_path, buf.getvalue())
            if on_epoch is not None:
                on_epoch(row)
        return self


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch's CPU operations on ``n`` threads, restoring the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def calibrate_norm(net: nn.Module, inputs: FeatureBank, chunk: int, seed: int, batch_size: int = 64) -> None:
    """Re-estimate the batch-norm statistics of ``net`` on one clean chunk per clip.

    A frozen backbone is read in eval mode, so its running statistics decide what a probe
    sees; estimating them on the training clips themselves treats a pretrained and a
    randomly initialised backbone alike.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(inputs))
    net.train()
    for b in range(0, len(order), batch_size):
        rows = order[b: b + batch_size]
        if len(rows) < 2:
            continue
        starts = (rng.random(len(rows)) * (np.maximum(inputs.lengths[rows] - chunk, 0) + 1)).astype(np.int64)
        net.embed(inputs.cut(rows, starts, chunk))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.eval()


def pretrain_backbone(net_spec: NetSpec, params: dict[str, Any], config: PretrainConfig, audio: FeatureBank,
                      inputs: FeatureBank, ids: list[str], out: Path, data: str,
                      state_path: Path | None = None,
                      on_epoch: EpochLog | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Pretrain the network of ``net_spec`` on clips and save the backbone to ``out``.

    ``params`` are the parameters of the system it is a backbone of (the checkpoint keeps
    them), ``audio`` holds the clips' waveforms at the network's rate, ``inputs`` their
    cached network inputs (batch-norm statistics are estimated on them afterwards),
    ``data`` says where the clips came from. Returns the checkpoint and the per-epoch
    history.
    """
    from musicbench.systems.deep.checkpoint import FORMAT, write_checkpoint

    spec = net_spec.input
    torch.manual_seed(config.seed)
    net = net_spec.build()
    chunk = spec.frames(config.chunk_samples)
    trainer = Pretrainer(net, spec.module(), chunk, config, audio.device)
    # On CPU, one torch thread: the views' NumPy work between torch operations leaves idle
    # OpenMP workers spinning against it (measured 2-6x faster on 2 cores), and one thread
    # gives the same weights on every machine.
    with torch_threads(1) if audio.device.type == "cpu" else nullcontext():
        trainer.fit(audio, ids, state_path, on_epoch)
        calibrate_norm(net, inputs, chunk, config.seed)
    meta = {"format": FORMAT, "encoder": "ssl", "params": {k: v for k, v in params.items() if k != "device"},
            "network": net_spec.checkpoint(), "classes": [], "kind": "self-supervised",
            "input": asdict(spec), "task": data,
            "pretrain": {"views": list(config.views), "temperature": config.temperature,
                         "epochs": config.epochs, "batch_size": config.batch_size, "clips": len(ids),
                         "loss": [row["loss"] for row in trainer.history]}}
    return write_checkpoint(out, net, meta), trainer.history


def bank_digest(bank: FeatureBank, ids: list[str]) -> str:
    """Digest of clips' ids and their audio: what a cached pretraining learned from."""
    h = hashlib.sha1("\n".join(ids).encode())
    longest = int(bank.lengths.max())
    for i in range(len(bank)):  # one clip at a time, as a [bins, longest] block padded with silence
        h.update(bank.read(np.array([i]), np.array([0]), longest).numpy().tobytes())
    return h.hexdigest()[:16]


__all__ = ["DEFAULT_VIEWS", "VIEWS", "PretrainConfig", "Pretrainer", "ProjectionHead", "bank_digest",
           "calibrate_norm", "check_views", "make_view", "nt_xent", "pretrain_backbone"]
