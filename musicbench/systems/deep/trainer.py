"""The one trainer of the deep family: chunked training, clip-level inference.

Training draws ``chunks_per_clip`` random fixed-length chunks per clip per epoch (new
positions every epoch, seeded) from the clips' cached inputs (``FeatureBank``), so an
epoch costs only the network; ``torch.utils.data`` cuts the planned chunks from disk, in
worker processes if asked (``musicbench.systems.deep.loader``). Augmented chunks are cut
from the audio, transformed and passed through the fixed front end on the fly.
Inference streams each clip's overlapping chunks through the same loader and averages
the chunk probabilities into one score per clip. AdamW with linear warm-up
and cosine decay; the epoch with the best validation score is kept (early stopping after
``patience`` epochs without improvement). Mixed precision is used on CUDA only; on CPU,
the same seed gives the same weights and scores.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicbench.augment import seed_for
from musicbench.errors import ConfigError
from musicbench.protocol.metrics import evaluate, primary_metric
from musicbench.systems.deep.inputs import FeatureBank
from musicbench.systems.deep.loader import loader_settings, planned_batches
from musicbench.systems.heads import masked_bce
from musicbench.systems.tagwise import observed

STRETCH_MARGIN = 1.25  # extra audio read around an augmented chunk, so a faster stretch still fills it


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda[:N]`` or ``mps`` as a torch device; a clear error when it is absent."""
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: must be cpu, cuda[:N] or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available on this "
                              "machine (no GPU, or a CPU-only torch build); use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} was asked for but MPS is not available on this machine")
    return torch.device(name)


def eval_chunks(lengths: np.ndarray, length: int, hop: int, most: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clip index, start) of every inference chunk: hop-spaced, the last one ending at the
    clip's end; with ``most``, a clip that would have more gets ``most`` evenly spaced from
    its start to its end instead."""
    rows, starts = [], []
    for i, n in enumerate(lengths):
        last = max(int(n) - length, 0)
        s = list(range(0, last + 1, hop))
        if s[-1] != last:
            s.append(last)
        if most and len(s) > most:
            s = np.linspace(0, last, most).round().astype(int).tolist()
        rows += [i] * len(s)
        starts += s
    return np.array(rows, dtype=np.int64), np.array(starts, dtype=np.int64)


def warmup_cosine(step: int, warm: int, total: int) -> float:
    """The learning-rate factor at ``step``: linear warm-up over ``warm`` steps, then cosine
    decay to zero at ``total``."""
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def mixed_precision(device: torch.device, amp: bool | str) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """(autocast on, its dtype, the gradient scaler). ``amp = True``: bfloat16 where the GPU
    has it, float16 with loss scaling otherwise, and off on CPU and MPS, where runs stay
    bitwise equal to float32 ones. ``amp = "bf16"``: bfloat16 autocast on any device; on a
    CPU with bfloat16 instructions (AVX512-BF16, AMX) convolutions run about twice as fast."""
    use_amp = amp == "bf16" or bool(amp and device.type == "cuda")
    dtype = (torch.bfloat16 if amp == "bf16" or (use_amp and torch.cuda.is_bf16_supported())
             else torch.float16)
    return use_amp, dtype, torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)


def optimise(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """One optimiser step on ``loss``, scaled where float16 autocast needs it."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


@dataclass
class TrainConfig:
    """How to train; the system fills it from its parameters."""

    chunk: int  # input frames per chunk
    eval_hop: int  # input frames between inference chunks
    hop: int = 1  # audio samples per input frame (where augmented chunks are cut)
    chunk_samples: int = 0  # audio samples behind a chunk (0: chunk * hop)
    chunks_per_clip: int = 1
    valid_chunks: int = 0  # chunks scored per validation clip, evenly spaced (0: all, as at test)
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-2
    max_epochs: int = 30
    patience: int = 8
    warmup_epochs: float = 1.0
    amp: bool | str = True  # see mixed_precision
    augment: str | None = None
    augment_p: float = 0.5
    sample_rate: int = 22050
    seed: int = 0
    desc: str = "train"
    channels_last: bool = True  # for 2-D convolutions on CUDA
    head_loss: str = "mse"  # regression: "mse" or "huber" on standardised targets
    compile: bool = False  # torch.compile the network

    @property
    def audio_chunk(self) -> int:
        return self.chunk_samples or self.chunk * self.hop


class Trainer:
    """Fits a ``ChunkClassifier`` and scores clips with it; ``history`` has one dict per epoch."""

    def __init__(self, model: nn.Module, config: TrainConfig, device: torch.device, kind: str,
                 classes: list[str], frontend: nn.Module | None = None):
        self.model, self.cfg, self.device = model.to(device), config, device
        if device.type == "cuda" and config.channels_last and any(
                isinstance(m, nn.Conv2d) for m in model.modules()):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if config.compile else self.model  # what runs batches
        self.frontend = frontend.to(device) if frontend is not None else None
        self.kind, self.classes = kind, classes
        self.target_mean, self.target_scale = np.zeros(len(classes)), np.ones(len(classes))  # regression
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.use_amp, self.amp_dtype, self.scaler = mixed_precision(device, config.amp)
        self.loader = loader_settings()

    def _loss(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "multilabel":
            return masked_bce(logits, target, weight)
        if self.kind == "regression":
            loss = nn.functional.huber_loss if self.cfg.head_loss == "huber" else nn.functional.mse_loss
            return loss(logits.float(), target)
        return nn.functional.cross_entropy(logits.float(), target)

    def _augment(self, chunks: torch.Tensor, audio: FeatureBank, rows: np.ndarray, starts: np.ndarray,
                 picked: np.ndarray, ids: list[str], epoch: int) -> torch.Tensor:
        """Replace the ``picked`` chunks (a random ``augment_p`` share) by augmented views.

        Pitch shift, time stretch, equalisation and noise all act on audio: the chunk's
        audio (25% more, so a faster stretch still fills it) is transformed and passed
        through the fixed front end. Each transform is seeded by the track, the run's seed
        and the epoch, so a clip sees a different augmentation every epoch and reruns see
        the same ones.
        """
        from musicbench.augment import apply

        cfg = self.cfg
        if not len(picked):
            return chunks
        n = cfg.audio_chunk
        raw = audio.cut(rows[picked], starts[picked] * cfg.hop, int(n * STRETCH_MARGIN))[:, 0].cpu().numpy()
        views = np.zeros((len(picked), n), dtype=np.float32)
        for j, i in enumerate(picked):
            seed = seed_for(ids[i], cfg.augment, str(cfg.seed), str(epoch))
            y = apply(cfg.augment, raw[j], cfg.sample_rate, seed)[:n]
            views[j, : len(y)] = y
        with torch.no_grad():
            feats = self.frontend(torch.from_numpy(views).to(self.device))
        chunks = chunks.clone()
        chunks[torch.as_tensor(picked, device=chunks.device)] = feats[..., : cfg.chunk].to(chunks.dtype)
        return chunks

    def epoch_plan(self, bank: FeatureBank, rng: np.random.Generator,
                   augment: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(clip rows, start frames, chunks to augment) per batch of one epoch: every clip
        ``chunks_per_clip`` times, in random order, each at a random position."""
        cfg = self.cfg
        order = rng.permutation(np.repeat(np.arange(len(bank)), cfg.chunks_per_clip))
        plan = []
        for b in range(0, len(order), cfg.batch_size):
            rows = order[b: b + cfg.batch_size]
            if len(rows) < 2 and len(order) > 1:  # batch norm needs two items
                rows = order[b - 1: b + 1]
            span = np.maximum(bank.lengths[rows] - cfg.chunk, 0)
            starts = (rng.random(len(rows)) * (span + 1)).astype(np.int64)
            picked = np.flatnonzero(rng.random(len(rows)) < cfg.augment_p) if augment else None
            plan.append((rows, starts, picked))
        return plan

    def training_batches(self, bank: FeatureBank, ids: list[str], epoch: int,
                         rng: np.random.Generator, audio: FeatureBank | None = None):
        """(chunks, clip rows) per batch of one epoch (``epoch_plan``), the chunks read by
        the loader."""
        augment = bool(self.cfg.augment and audio is not None)
        plan = self.epoch_plan(bank, rng, augment)
        batches = planned_batches(bank, [(rows, starts) for rows, starts, _ in plan], self.cfg.chunk,
                                  self.loader)
        for (rows, starts, picked), chunks in zip(plan, batches, strict=True):
            if augment:
                chunks = self._augment(chunks, audio, rows, starts, picked, ids, epoch)
            yield chunks, rows

    @torch.no_grad()
    def predict(self, bank: FeatureBank, most: int = 0) -> np.ndarray:
        """``[clips, classes]`` clip scores: mean chunk probabilities (softmax or sigmoid) over
        every inference chunk, or ``most`` evenly spaced ones per clip; for regression the
        mean chunk outputs in the targets' units."""
        self.model.eval()
        rows, starts = eval_chunks(bank.lengths, self.cfg.chunk, self.cfg.eval_hop, most)
        sums = torch.zeros(len(bank), len(self.classes), dtype=torch.float64, device=self.device)
        step = 4 * self.cfg.batch_size
        plan = [(rows[b: b + step], starts[b: b + step]) for b in range(0, len(rows), step)]
        batches = planned_batches(bank, plan, self.cfg.chunk, self.loader)
        for (r, _), chunks in zip(plan, batches, strict=True):
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                logits = self.net(chunks).float()
            probs = (logits if self.kind == "regression" else torch.sigmoid(logits)
                     if self.kind == "multilabel" else logits.softmax(dim=1))
            sums.index_add_(0, torch.as_tensor(r, device=self.device), probs.double())
        counts = np.bincount(rows, minlength=len(bank)).astype(np.float64)
        scores = sums.cpu().numpy() / counts[:, None]
        return scores * self.target_scale + self.target_mean if self.kind == "regression" else scores

    def _clip_loss(self, scores: np.ndarray, y: np.ndarray, mask: np.ndarray | None) -> float:
        if self.kind == "regression":  # squared error in standardised units
            return float(np.mean(((scores - y) / self.target_scale) ** 2))
        p = np.clip(scores, 1e-7, 1 - 1e-7)
        if self.kind == "multilabel":
            keep = observed(y, mask)
            return float(-np.mean((y * np.log(p) + (1 - y) * np.log(1 - p))[keep]))
        return float(-np.mean(np.log(p[np.arange(len(y)), y])))

    def fit(self, train: FeatureBank, y: np.ndarray, ids: list[str], valid: FeatureBank | None = None,
            y_valid: np.ndarray | None = None,
            epoch_callback: Callable[[int, float], None] | None = None,
            audio: FeatureBank | None = None, mask: np.ndarray | None = None,
            mask_valid: np.ndarray | None = None) -> Trainer:
        """Train, keeping the weights of the best validation epoch (the last, without ``valid``).

        ``mask`` and ``mask_valid`` (multilabel, 1 where a clip's tag was observed; None:
        all) leave unobserved pairs out of the training loss and of the validation score
        and loss: every chunk carries its clip's mask.

        ``audio`` (the training clips' waveforms at the network's rate) is needed only to
        augment (``cfg.augment``), together with the trainer's ``frontend``.

        ``epoch_callback(epoch, valid_score)`` runs after each epoch that has a validation
        score; whatever it raises (``optuna.TrialPruned``) ends training and propagates.
        """
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        if self.kind == "regression":  # the head learns standardised targets
            std = y.std(axis=0)
            self.target_mean, self.target_scale = y.mean(axis=0), np.where(std > 0, std, 1.0)
            y = ((y - self.target_mean) / self.target_scale).astype(np.float32)
        target = torch.as_tensor(y, device=self.device)
        weight = None if mask is None else torch.as_tensor(observed(y, mask), dtype=torch.float32,
                                                           device=self.device)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(train) * cfg.chunks_per_clip / cfg.batch_size)
        total, warm = cfg.max_epochs * steps_per_epoch, max(1, int(cfg.warmup_epochs * steps_per_epoch))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, warm, total))
        metric = primary_metric(self.kind)
        best_key, best_state, stale = None, None, 0
        bar = tqdm(range(1, cfg.max_epochs + 1), desc=cfg.desc, disable=None, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            self.model.train()
            losses, seen = [], 0
            for chunks, rows in self.training_batches(train, ids, epoch, rng, audio):
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                    logits = self.net(chunks)
                index = torch.as_tensor(rows, device=self.device)
                loss = self._loss(logits, target[index], None if weight is None else weight[index])
                optimise(loss, opt, self.scaler)
                sched.step()
                losses.append(loss.item() * len(rows))
                seen += len(rows)
            seconds = time.perf_counter() - t0
            row: dict[str, Any] = {"epoch": epoch, "train_loss": sum(losses) / seen,
                                   "lr": opt.param_groups[0]["lr"], "seconds": round(seconds, 3),
                                   "train_chunks": seen, "train_chunks_per_s": seen / seconds}
            if valid is not None and y_valid is not None:
                scores = self.predict(valid, cfg.valid_chunks)
                score = float(evaluate(self.kind, y_valid, scores, self.classes, mask_valid)[metric])
                row.update({"valid_loss": self._clip_loss(scores, y_valid, mask_valid),
                            f"valid_{metric}": score})
                # NaN AUC (a tag absent from valid) falls back on the loss alone
                key = (score if not math.isnan(score) else -math.inf, -row["valid_loss"])
                if best_key is None or key > best_key:
                    best_key, stale, self.best_epoch = key, 0, epoch
                    best_state = copy.deepcopy(self.model.state_dict())
                else:
                    stale += 1
            self.history.append(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.startswith(("train_loss", "valid_"))})
            if valid is not None and epoch_callback is not None:
                epoch_callback(epoch, row[f"valid_{metric}"])
            if valid is not None and stale > cfg.patience:
                break
        bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        else:
            self.best_epoch = len(self.history)
        return self
