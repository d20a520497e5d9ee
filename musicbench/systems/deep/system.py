"""The deep family as a ``System``: one class, the network chosen by ``model``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.errors import ConfigError
from musicbench.runtime import cache_root
from musicbench.systems.base import RUN, EpochCallback, System
from musicbench.systems.deep.architectures import NetSettings, reads_wave
from musicbench.systems.deep.contrastive import (
    PretrainConfig,
    bank_digest,
    check_views,
    pretrain_backbone,
)
from musicbench.systems.deep.inputs import DeepInput, FeatureBank, clip_inputs
from musicbench.systems.deep.netspec import NetSpec
from musicbench.systems.deep.params import CHUNKED_TRAINING, INPUT, MODEL, NETWORK, PRETRAINING, SSL
from musicbench.systems.deep.trainer import TrainConfig, Trainer, resolve_device
from musicbench.tasks import ClipData

# parameters that only shape the supervised training, not a pretrained backbone
SUPERVISED_ONLY = ("dropout", "eval_overlap", "valid_chunks", "chunks_per_clip", "batch_size", "lr",
                   "weight_decay", "max_epochs", "patience", "warmup_epochs", "augment_p", "torch_compile",
                   "init", "freeze", "head_loss", "device")


class DeepSystem(System):
    """A CNN trained on fixed-length chunks of audio, scored per clip over all its chunks.

    ``model`` is one of ``MODELS`` (``musicbench.systems.deep.architectures``);
    ``frontend`` (``logmel`` or ``cqt``) feeds the spectrogram models, the waveform models
    read the audio resampled to ``sample_rate`` (None: the task's rate). Each clip's input
    is computed once and cached on disk (``musicbench.systems.deep.inputs``). Parameters a
    model does not use are ignored by it. Training uses ``train.augment`` on the fly for a
    random ``augment_p`` share of the chunks; a multilabel ``train.mask`` leaves the
    unobserved (clip, tag) pairs out of the loss (and ``valid.mask`` out of early stopping).
    A regression task's head has one output per target, trained on standardised targets
    with ``head_loss`` (``mse`` or ``huber``) and early-stopped on the validation R².
    Early stopping scores each validation clip after every epoch over all its inference
    chunks, or over ``valid_chunks`` evenly spaced ones: on long clips, all of them can
    cost a quarter of an epoch's training.
    After ``fit``, ``history_`` holds one dict of metrics per epoch, ``best_epoch_`` the
    epoch whose weights were kept and ``n_parameters_`` the network's size; the same
    three make up ``training_report()``. ``save(path)`` writes the fitted network as a
    checkpoint that the ``deep`` encoder family turns into an encoder.

    ``init`` starts from a pretrained backbone: a checkpoint path (``musicbench pretrain``),
    or ``"ssl"`` to pretrain contrastively on the training (and validation) audio inside
    ``fit`` (``pretrain_epochs``, ``pretrain_batch_size``, ``pretrain_lr``, ``temperature``,
    ``views``; see ``musicbench.systems.deep.contrastive``), cached by content so every cell
    with the same training clips reuses it; ``pretrain_epochs = 0`` keeps the random
    initialisation under the same recipe. ``freeze = true`` then trains the head only (a
    linear probe on the backbone), ``false`` fine-tunes everything.
    """

    kinds = ("multiclass", "multilabel", "regression")
    encoder_family = "deep"  # the encoder family that reads its checkpoints
    params = MODEL | INPUT | NETWORK | CHUNKED_TRAINING | PRETRAINING | RUN

    def _param_problems(self) -> list[str]:
        problems = super()._param_problems()
        if self.freeze and self.init is None:
            problems.append("freeze=true needs init (a pretrained backbone to freeze)")
        return problems

    def input_spec(self, source_rate: int) -> DeepInput:
        """What the network reads, for audio at ``source_rate``: the key of its cached input."""
        kind = "wave" if reads_wave(self.model) else self.frontend
        return DeepInput(kind, source_rate, self.sample_rate or source_rate, n_fft=self.n_fft,
                         hop_length=self.hop_length, n_mels=self.n_mels, f_max=self.f_max,
                         n_bins=self.n_bins, fmin=self.fmin)

    def train_config(self, spec: DeepInput, augment: str | None, desc: str) -> TrainConfig:
        """The trainer's settings for input ``spec``, chunk lengths in input frames."""
        chunk_samples = int(round(self.chunk_seconds * spec.sample_rate))
        chunk = spec.frames(chunk_samples)
        return TrainConfig(
            chunk=chunk, eval_hop=max(1, int(round(chunk * (1 - self.eval_overlap)))), hop=spec.hop,
            chunk_samples=chunk_samples, chunks_per_clip=self.chunks_per_clip, valid_chunks=self.valid_chunks,
            batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            max_epochs=self.max_epochs, patience=self.patience, warmup_epochs=self.warmup_epochs,
            amp=self.amp, augment=augment, augment_p=self.augment_p, sample_rate=spec.sample_rate,
            seed=self.seed, desc=desc, compile=self.torch_compile, head_loss=self.head_loss,
        )

    def pretrain_config(self, spec: DeepInput) -> PretrainConfig:
        """The contrastive pretraining settings for input ``spec``."""
        backbone = {k: v for k, v in self.get_params().items() if k not in SUPERVISED_ONLY}
        return PretrainConfig(
            chunk_samples=int(round(self.chunk_seconds * spec.sample_rate)), sample_rate=spec.sample_rate,
            epochs=self.pretrain_epochs, batch_size=self.pretrain_batch_size, temperature=self.temperature,
            views=check_views(self.views), lr=self.pretrain_lr, seed=self.seed, amp=self.amp,
            extra={"backbone": backbone, "input": spec.config()},
        )

    def net_spec(self, n_outputs: int, spec: DeepInput) -> NetSpec:
        """The network of ``n_outputs`` outputs reading ``spec``, as its settings say."""
        settings = NetSettings(n_fft=self.n_fft, hop_length=self.hop_length, n_harmonics=self.n_harmonics,
                               n_f0=self.n_f0, width=self.width, n_blocks=self.n_blocks,
                               channels=tuple(self.channels) if self.channels else None, dropout=self.dropout)
        return NetSpec(self.model, spec, n_outputs, settings)

    def build_network(self, n_classes: int, spec: DeepInput) -> torch.nn.Module:
        """A freshly initialised network reading ``spec`` (seed torch first for reproducible weights)."""
        return self.net_spec(n_classes, spec).build()

    def network_checkpoint(self, n_outputs: int, spec: DeepInput) -> dict[str, Any]:
        return self.net_spec(n_outputs, spec).checkpoint()

    def bank(self, data: ClipData, spec: DeepInput, device: torch.device,
             transform: str | None = None) -> FeatureBank:
        """The clips' cached inputs under ``spec``, left on disk and read a chunk at a time."""
        return FeatureBank(clip_inputs(data, spec, transform), device, spec.pad_value)

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        spec = self.input_spec(train.sample_rate)
        try:
            net = self.build_network(len(train.classes), spec)
            frontend = spec.module() if train.augment else None
        except ValueError as exc:
            raise ConfigError(f"{self.model}: {exc}") from None
        cfg = self.train_config(spec, train.augment, f"{self.model} {train.task.ref}")
        self.input_ = spec
        bank = self.bank(train, spec, device)
        valid_bank = self.bank(valid, spec, device) if valid is not None else None
        if self.init is not None:
            self.init_ = self._start_from(net, self._backbone(train, valid, spec, device))
            torch.manual_seed(self.seed)  # the same training draws whether pretraining ran or was cached
        self.trainer_ = Trainer(net, cfg, device, train.kind, list(train.classes), frontend)
        audio = None
        if train.augment:  # augmented views are computed from the audio
            audio = self.bank(train, self.wave_spec(spec), torch.device("cpu"))
        self.trainer_.fit(bank, train.y, [c.track_id for c in train.clips], valid_bank,
                          None if valid is None else valid.y, epoch_callback, audio,
                          train.mask, None if valid is None else valid.mask)
        self.history_: list[dict[str, Any]] = self.trainer_.history
        self.best_epoch_ = self.trainer_.best_epoch
        self.n_parameters_ = sum(p.numel() for p in net.parameters())
        self.task_ = train.task.ref

    @staticmethod
    def wave_spec(spec: DeepInput) -> DeepInput:
        """The waveform at the network's rate, where augmented views are cut from."""
        return DeepInput("wave", spec.source_rate, spec.sample_rate)

    def _backbone(self, train: ClipData, valid: ClipData | None, spec: DeepInput,
                  device: torch.device) -> Path:
        """The checkpoint ``init`` names; for ``ssl``, the backbone pretrained on the training
        and validation audio (never the test part), cached by content."""
        if self.init != SSL:
            return Path(self.init)
        parts = [train] if valid is None else [train, valid]
        clips = [c for part in parts for c in part.clips]
        unlabelled = ClipData(train.task, clips, list(train.classes), train.kind)
        wave = self.wave_spec(spec)
        audio = self.bank(unlabelled, wave, device)
        ids = [c.track_id for c in clips]
        key = hashlib.sha1(f"{self.pretrain_config(spec).key()}|{bank_digest(audio, ids)}".encode())
        path = cache_root() / "pretrained" / f"{self.model}-{key.hexdigest()[:16]}.pt"
        if not path.is_file():
            inputs = audio if spec == wave else self.bank(unlabelled, spec, device)
            pretrain_backbone(self.net_spec(1, spec), self.get_params(), self.pretrain_config(spec), audio,
                              inputs, ids, path, f"{train.task.ref}: {len(ids)} clips")
        return path

    def _start_from(self, net: torch.nn.Module, path: Path) -> dict[str, Any]:
        """Load a pretrained backbone into ``net`` (all but the head), freezing it if asked."""
        from musicbench.systems.deep.checkpoint import load_checkpoint

        pretrained, spec, meta = load_checkpoint(path)
        mine = self.input_spec(spec.source_rate)
        same_input = (spec.kind, spec.sample_rate) == (mine.kind, mine.sample_rate)
        if not same_input or meta["params"]["model"] != self.model:
            raise ConfigError(f"init={str(path)!r}: a {meta['params']['model']} backbone reading "
                              f"{spec.kind} at {spec.sample_rate} Hz cannot start a {self.model} reading "
                              f"{mine.kind} at {mine.sample_rate} Hz")
        state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("head.")}
        try:
            net.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ConfigError(f"init={str(path)!r}: its backbone does not fit this network "
                              f"(other widths or blocks?): {str(exc).splitlines()[0]}") from None
        if self.freeze:
            net.freeze_backbone()
        return {"checkpoint": str(path), "frozen": self.freeze, "pretrain": meta.get("pretrain")}

    def uses_validation(self) -> bool:
        return True  # early stopping and the kept epoch

    def extractors(self, sample_rate: int) -> list[DeepInput]:
        """The network's input, cached per clip like any front end, and the waveform where
        ``ssl`` pretraining reads it (a train-time augmentation also reads the waveform,
        inside ``fit``)."""
        spec = self.input_spec(sample_rate)
        wave = self.wave_spec(spec)
        return [spec] if self.init != SSL or spec == wave else [spec, wave]

    def save(self, path: str | Path) -> Path:
        """Save the fitted network as a checkpoint that the ``deep`` encoder family loads
        (``musicbench.systems.deep.checkpoint``)."""
        from musicbench.systems.deep.checkpoint import save_checkpoint

        return save_checkpoint(self, path)

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        return self.trainer_.predict(self.bank(data, self.input_, self.trainer_.device))

    def training_report(self) -> dict[str, Any]:
        if not hasattr(self, "trainer_"):
            return {}
        report = {"history": self.history_, "best_epoch": self.best_epoch_,
                  "n_parameters": self.n_parameters_, **({"init": self.init_} if self.init else {})}
        return json.loads(json.dumps(report, default=float))  # numpy scalars -> JSON numbers
