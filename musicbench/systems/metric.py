"""The metric family: audio and tags co-embedded with a triplet loss, scored by retrieval.

An audio branch (a deep backbone of the registry on its cached input, or a frozen
encoder's pooled embeddings) and a tag branch (one learned vector per tag) are each
projected into one L2-normalised space. Clips are anchors, their tags positives and the
other tags negatives (and, with ``symmetric``, tags are anchors for the clips of the
batch too). A clip's score for a tag is the cosine similarity of its pooled chunk
embedding and the tag's vector, mapped to [0, 1], so per-tag ROC-AUC, PR-AUC (tag ->
audio retrieval) and the audio -> tag retrieval metrics all come from one matrix, on the
same leaderboard as the classifiers.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from musicbench.encoders.base import EncoderCard, file_digest
from musicbench.encoders.extractor import EncoderExtractor
from musicbench.errors import ConfigError
from musicbench.features import FeatureCache
from musicbench.features.extractor import Extractor
from musicbench.features.lazy import open_frames
from musicbench.protocol.metrics import evaluate, metrics_for, primary_metric
from musicbench.systems.base import RUN, EpochCallback, System
from musicbench.systems.deep.encoder import DeepEncoder
from musicbench.systems.deep.inputs import DeepInput, FeatureBank
from musicbench.systems.deep.params import CHUNKED_TRAINING
from musicbench.systems.deep.system import DeepSystem
from musicbench.systems.deep.trainer import TrainConfig, Trainer, eval_chunks, optimise, resolve_device
from musicbench.systems.metric_net import BUILD, DeepBackbone, MetricNet, Pooled
from musicbench.systems.params import COUNT, POSITIVE, Either, OneOf, Param, Params, Rule
from musicbench.systems.probe import EncoderNames
from musicbench.tasks import ClipData

MINING = ("hard", "semi-hard", "all")
#: chunking and training settings, the deep family's, passed on to the backbone's system
TRAINING = CHUNKED_TRAINING.only("chunk_seconds", "eval_overlap", "chunks_per_clip", "batch_size", "lr",
                                 "weight_decay", "max_epochs", "patience", "augment_p", "amp"
                                 ).but(lr=1e-3, weight_decay=1e-4)


class DeepPresets(Rule):
    """A system preset of the ``deep`` family, read when checked (a workspace may add some)."""

    def _names(self) -> list[str]:
        from musicbench.systems import get_preset, system_names

        return [n for n in system_names() if get_preset(n)["family"] == "deep"]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self._names()

    def __str__(self) -> str:
        return f"a deep system preset: {', '.join(self._names())}"


class Dict(Rule):
    def accepts(self, value: Any) -> bool:
        return value is None or isinstance(value, dict)

    def __str__(self) -> str:
        return "None or a table of parameters"


def triplet_loss(sim: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, margin: float,
                 mining: str) -> torch.Tensor:
    """Triplet loss on cosine distances ``1 - sim`` of anchors (rows) to candidates (columns).

    ``pos`` marks each anchor's positives; the other ``valid`` candidates are negatives.
    ``hard``: per anchor, its farthest positive against its nearest negative. ``semi-hard``
    (FaceNet): per (anchor, positive), the nearest negative farther than the positive, or
    the farthest negative where none is. ``all``: every (anchor, positive, negative)
    triplet, averaged over those violating the margin. Anchors lacking a positive or a
    negative are left out; a batch with no triplet gives a zero loss.
    """
    dist = 1 - sim
    pos, neg = pos & valid, valid & ~pos
    if mining == "hard":
        keep = pos.any(dim=1) & neg.any(dim=1)
        far = dist.masked_fill(~pos, -math.inf).amax(dim=1)
        near = dist.masked_fill(~neg, math.inf).amin(dim=1)
        return torch.relu(far - near + margin)[keep].mean() if keep.any() else dist.sum() * 0
    d_ap = dist[:, :, None]  # [anchor, positive, 1]
    d_an = dist[:, None, :]  # [anchor, 1, negative]
    triplets = pos[:, :, None] & neg[:, None, :]
    if mining == "all":
        losses = torch.relu(d_ap - d_an + margin)[triplets]
        active = losses > 0
        return losses[active].mean() if active.any() else dist.sum() * 0
    beyond = triplets & (d_an > d_ap)
    semi = d_an.expand_as(triplets).masked_fill(~beyond, math.inf).amin(dim=2)
    farthest = d_an.expand_as(triplets).masked_fill(~triplets, -math.inf).amax(dim=2)
    chosen = torch.where(beyond.any(dim=2), semi, farthest)
    keep = triplets.any(dim=2)
    return torch.relu(dist - chosen + margin)[keep].mean() if keep.any() else dist.sum() * 0


class MetricSystem(System):
    """Audio and tags in one space, trained with a triplet loss (multilabel tasks only).

    The audio branch is ``encoder``, a frozen encoder preset whose embeddings are pooled
    per clip (mean and max over time), or without one ``backbone``, a ``deep`` system
    preset whose network (and cached input, with ``backbone_params`` overrides) runs on
    ``chunk_seconds`` chunks. Both branches are projected (``hidden`` units) to ``dim`` and
    normalised. Training: ``mining`` (``hard``, ``semi-hard``, ``all``) within each batch
    of ``batch_size`` chunks, ``margin`` on cosine distance, AdamW with cosine decay over
    ``max_epochs``; with a validation part, the epoch with the best validation
    ``monitor`` (a retrieval metric) is kept, stopping after ``patience`` epochs without
    improvement. After ``fit``, ``history_`` has the loss (and validation scores) per epoch.
    ``save(path)`` writes a deep-backbone system as a checkpoint that the ``metric``
    encoder family turns into an encoder.
    """

    kinds = ("multilabel",)
    encoder_family = "metric"  # the encoder family that reads its checkpoints
    params = Params(
        backbone=Param("cnn1d-small", DeepPresets()),
        backbone_params=Param(None, Dict()),
        encoder=Param(None, Either(OneOf(None), EncoderNames())),
        dim=Param(64, COUNT),
        hidden=Param(256, COUNT),
        margin=Param(0.2, POSITIVE),
        mining=Param("semi-hard", OneOf(*MINING)),
        symmetric=Param(True, OneOf(True, False)),
        monitor=Param("map_audio_to_tag", OneOf(*metrics_for("multilabel", leaderboard_only=True))),
    ) | TRAINING | RUN

    def _param_problems(self) -> list[str]:
        problems = super()._param_problems()
        shadowed = sorted(set(self.backbone_params or {}) & set(TRAINING))
        if not problems and shadowed:
            problems.append(f"backbone_params={self.backbone_params!r}: {', '.join(shadowed)} are the metric "
                            "system's own parameters; set them on it, not in backbone_params")
        if not problems and self.encoder is None:
            try:
                self.deep_system().validate_params()
            except ConfigError as exc:
                problems.append(f"backbone_params={self.backbone_params!r}: {exc}")
        return problems

    def deep_system(self) -> DeepSystem:
        """The backbone's deep system, with this system's chunking and training settings
        (a ``DeepSystem``: its input, network and trainer configuration), built once for
        the parameters it is asked for with."""
        from musicbench.systems import build_system

        own = {k: getattr(self, k) for k in TRAINING}
        key = json.dumps([self.backbone, self.backbone_params, own, self.seed, self.device],
                         sort_keys=True, default=str)
        cached = self.__dict__.get("_deep_system")
        if cached is None or cached[0] != key:
            self._deep_system = (key, build_system(self.backbone, seed=self.seed, device=self.device,
                                                   **{**(self.backbone_params or {}), **own}))
        return self._deep_system[1]

    def input_spec(self, source_rate: int) -> DeepInput:
        return self.deep_system().input_spec(source_rate)

    def build_network(self, n_tags: int, spec: DeepInput | None = None, size: int | None = None) -> MetricNet:
        """A fresh network: on the deep backbone reading ``spec``, or on pooled encoder
        embeddings of ``size`` values (seed torch first for reproducible weights)."""
        if self.encoder is None:
            backbone = DeepBackbone(self.deep_system().build_network(1, spec))
            size = backbone.net.embedding_size
        else:
            backbone = Pooled()
        return MetricNet(backbone, size, n_tags, self.dim, self.hidden)

    def network_checkpoint(self, n_tags: int, spec: DeepInput) -> dict[str, Any]:
        """What a checkpoint of the deep-backbone network stores to rebuild it."""
        return {"build": BUILD, "args": {"backbone": self.deep_system().net_spec(1, spec).to_dict(),
                                         "n_tags": n_tags, "dim": self.dim, "hidden": self.hidden}}

    def extractors(self, sample_rate: int) -> list[Extractor]:
        if self.encoder is not None:
            return [EncoderExtractor(self.encoder, sample_rate, self.device)]
        return [self.input_spec(sample_rate)]

    def uses_validation(self) -> bool:
        return True  # early stopping and the kept epoch

    def bank(self, data: ClipData, device: torch.device) -> FeatureBank:
        """The clips' network inputs: cached deep inputs (read a chunk at a time), or pooled
        embeddings."""
        if self.encoder is None:
            return self.deep_system().bank(data, self.input_, device)
        (ex,) = self.extractors(data.sample_rate)
        frames = open_frames(data, [ex], FeatureCache())  # pooled one clip at a time
        return FeatureBank([np.concatenate([f.mean(axis=0), f.max(axis=0)])[None] for f in frames], device)

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        if train.augment and self.encoder is not None:
            raise ConfigError(f"augment={train.augment!r}: train-time augmentation needs a deep "
                              "backbone (an encoder branch reads cached embeddings of clean audio)")
        device = resolve_device(self.device)
        desc = f"metric {self.encoder or self.backbone} {train.task.ref}"
        frontend, audio = None, None
        if self.encoder is None:
            deep = self.deep_system()
            self.input_ = deep.input_spec(train.sample_rate)
            cfg = deep.train_config(self.input_, train.augment, desc)
            bank = self.bank(train, device)
            torch.manual_seed(self.seed)  # after the inputs, whatever computing them drew
            net = self.build_network(len(train.classes), self.input_)
            if train.augment:  # augmented views are computed from the audio
                frontend = self.input_.module()
                wave = DeepInput("wave", self.input_.source_rate, self.input_.sample_rate)
                audio = deep.bank(train, wave, torch.device("cpu"))
        else:
            self.input_ = None
            bank = self.bank(train, device)
            cfg = TrainConfig(chunk=1, eval_hop=1, chunks_per_clip=1, batch_size=self.batch_size,
                              max_epochs=self.max_epochs, amp=self.amp, seed=self.seed, desc=desc)
            torch.manual_seed(self.seed)  # after the inputs: building the encoder draws numbers
            net = self.build_network(len(train.classes), size=bank.bins)
        self.trainer_ = Trainer(net, cfg, device, train.kind, list(train.classes), frontend)
        valid_bank = self.bank(valid, device) if valid is not None else None
        self._train(bank, train, valid_bank, valid, epoch_callback, audio)
        self.n_parameters_ = sum(p.numel() for p in net.parameters())
        self.task_ = train.task.ref

    def _train(self, bank: FeatureBank, train: ClipData, valid_bank: FeatureBank | None,
               valid: ClipData | None, epoch_callback: EpochCallback | None,
               audio: FeatureBank | None) -> None:
        trainer, cfg = self.trainer_, self.trainer_.cfg
        net = trainer.model
        rng = np.random.default_rng(self.seed)
        target = torch.as_tensor(train.y, device=trainer.device).bool()
        observed = torch.as_tensor(np.ones_like(train.y) if train.mask is None else train.mask,
                                   device=trainer.device).bool()
        ids = [c.track_id for c in train.clips]
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = self.max_epochs * math.ceil(len(bank) * cfg.chunks_per_clip / cfg.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        primary = primary_metric("multilabel")
        self.history_: list[dict[str, Any]] = []
        best_key, best_state, stale = None, None, 0
        for epoch in range(1, self.max_epochs + 1):
            t0 = time.perf_counter()
            net.train()
            losses, seen = [], 0
            for chunks, rows in trainer.training_batches(bank, ids, epoch, rng, audio):
                r = torch.as_tensor(rows, device=trainer.device)
                with torch.autocast(trainer.device.type, dtype=trainer.amp_dtype, enabled=trainer.use_amp):
                    sim = trainer.net(chunks).float()
                loss = triplet_loss(sim, target[r], observed[r], self.margin, self.mining)
                if self.symmetric:  # tags as anchors, the batch's clips as candidates
                    loss = (loss + triplet_loss(sim.T, target[r].T, observed[r].T, self.margin,
                                                self.mining)) / 2
                optimise(loss, opt, trainer.scaler)
                sched.step()
                losses.append(loss.item() * len(rows))
                seen += len(rows)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": sum(losses) / seen,
                                   "lr": opt.param_groups[0]["lr"],
                                   "seconds": round(time.perf_counter() - t0, 3)}
            if valid_bank is not None:
                scores = self._scores(valid_bank)
                result = evaluate("multilabel", valid.y, scores, list(valid.classes), valid.mask)
                row.update({f"valid_{m}": result[m] for m in (self.monitor, primary)})
                score = result[self.monitor]
                key = (score if not math.isnan(score) else -math.inf, -row["train_loss"])
                if best_key is None or key > best_key:
                    best_key, stale, self.best_epoch_ = key, 0, epoch
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    stale += 1
            self.history_.append(row)
            if valid_bank is not None and epoch_callback is not None:
                epoch_callback(epoch, row[f"valid_{primary}"])
            if valid_bank is not None and stale > self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch_ = len(self.history_)

    @torch.no_grad()
    def embed_clips(self, bank: FeatureBank) -> torch.Tensor:
        """``[clips, dim]`` unit vectors: each clip's chunk embeddings averaged, renormalised."""
        trainer, cfg = self.trainer_, self.trainer_.cfg
        trainer.model.eval()
        rows, starts = eval_chunks(bank.lengths, cfg.chunk, cfg.eval_hop)
        sums = torch.zeros(len(bank), self.dim, dtype=torch.float64, device=trainer.device)
        step = 4 * cfg.batch_size
        for b in range(0, len(rows), step):
            r, s = rows[b: b + step], starts[b: b + step]
            with torch.autocast(trainer.device.type, dtype=trainer.amp_dtype, enabled=trainer.use_amp):
                emb = trainer.model.embed(bank.cut(r, s, cfg.chunk)).float()
            sums.index_add_(0, torch.as_tensor(r, device=trainer.device), emb.double())
        return nn.functional.normalize(sums, dim=1)

    @torch.no_grad()
    def _scores(self, bank: FeatureBank) -> np.ndarray:
        tags = self.trainer_.model.tag_vectors().double()
        return ((1 + self.embed_clips(bank) @ tags.T) / 2).cpu().numpy()

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        return self._scores(self.bank(data, self.trainer_.device))

    def save(self, path: str | Path) -> Path:
        """Save the fitted deep-backbone network as a checkpoint the ``metric`` encoder family loads."""
        from musicbench.systems.deep.checkpoint import save_checkpoint

        if self.encoder is not None:
            raise ConfigError("a metric system on a frozen encoder has no checkpoint of its own: save "
                              "one with a deep backbone, or probe the encoder itself")
        return save_checkpoint(self, path)

    def training_report(self) -> dict[str, Any]:
        if not hasattr(self, "trainer_"):
            return {}
        report = {"history": self.history_, "best_epoch": self.best_epoch_,
                  "n_parameters": self.n_parameters_}
        return json.loads(json.dumps(report, default=float))


class MetricEncoder(DeepEncoder):
    """The audio branch of a fitted metric system (deep backbone): per chunk, the unit
    vector in the space shared with the tags. ``checkpoint``, or ``system`` (a metric
    preset) fitted on ``task`` on first use, as for the ``deep`` encoder family."""

    def card(self) -> EncoderCard:
        meta = self.meta
        licence = f"own checkpoint, trained on {meta['task']} (the data's licence applies)"
        return EncoderCard(self.name, licence,
                           f"metric ({meta['params']['backbone']}) checkpoint {self.checkpoint}",
                           file_digest(self.checkpoint), self.sample_rate, self.scene_embedding_size,
                           self.timestamp_embedding_size)
