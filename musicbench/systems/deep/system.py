"""The deep family as a ``System``: one class, the network chosen by ``model``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from musicbench.errors import ConfigError
from musicbench.systems.base import EpochCallback, System
from musicbench.systems.deep.inputs import DeepInput, FeatureBank, clip_inputs
from musicbench.systems.deep.models import MODELS, SPECTRAL_FRONTENDS, WAVE_MODELS, build_model
from musicbench.systems.deep.trainer import TrainConfig, Trainer, resolve_device
from musicbench.systems.params import (
    COUNT,
    FRACTION,
    N_FFT,
    NON_NEGATIVE,
    POSITIVE,
    Either,
    Number,
    OneOf,
    Rule,
)
from musicbench.tasks import ClipData


class Widths(Rule):
    """None, or a non-empty list of positive integers (one width per block)."""

    def accepts(self, value: Any) -> bool:
        return value is None or (isinstance(value, (list, tuple)) and len(value) > 0
                                 and all(COUNT.accepts(v) for v in value))

    def __str__(self) -> str:
        return "None or a non-empty list of integers >= 1"


class DeepSystem(System):
    """A CNN trained on fixed-length chunks of audio, scored per clip over all its chunks.

    ``model`` is one of ``MODELS`` (see ``musicbench.systems.deep.models.build_model``);
    ``frontend`` (``logmel`` or ``cqt``) feeds the spectrogram models, the waveform models
    read the audio resampled to ``sample_rate`` (None: the task's rate). Each clip's input
    is computed once and cached on disk (``musicbench.systems.deep.inputs``). Parameters a
    model does not use are ignored by it. Training uses ``train.augment`` on the fly for a
    random ``augment_p`` share of the chunks; a multilabel ``train.mask`` leaves the
    unobserved (clip, tag) pairs out of the loss (and ``valid.mask`` out of early stopping).
    After ``fit``, ``history_`` holds one dict of metrics per epoch, ``best_epoch_`` the
    epoch whose weights were kept and ``n_parameters_`` the network's size; the same
    three make up ``training_report()``. ``save(path)`` writes the fitted network as a
    checkpoint that the ``deep`` encoder family turns into an encoder.
    """

    param_rules: ClassVar[dict[str, Rule]] = {
        **System.param_rules,
        "model": OneOf(*MODELS),
        "frontend": OneOf(*SPECTRAL_FRONTENDS),
        "sample_rate": Either(OneOf(None), COUNT),
        "n_fft": N_FFT,
        "hop_length": COUNT,
        "n_mels": COUNT,
        "f_max": Either(OneOf(None), POSITIVE),
        "n_bins": COUNT,
        "fmin": POSITIVE,
        "n_harmonics": COUNT,
        "n_f0": COUNT,
        "width": COUNT,
        "n_blocks": COUNT,
        "channels": Widths(),
        "dropout": Number(0, 1, high_open=True),
        "chunk_seconds": POSITIVE,
        "eval_overlap": Number(0, 1, high_open=True),
        "chunks_per_clip": COUNT,
        "batch_size": Number(2, integer=True),  # batch norm needs two items
        "lr": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "max_epochs": COUNT,
        "patience": Number(0, integer=True),
        "warmup_epochs": NON_NEGATIVE,
        "augment_p": FRACTION,
        "amp": OneOf(True, False),
        "torch_compile": OneOf(True, False),
    }

    def __init__(
        self,
        model: str = "cnn2d",
        frontend: str = "logmel",
        sample_rate: int | None = None,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 64,
        f_max: float | None = None,
        n_bins: int = 84,
        fmin: float = 32.70,
        n_harmonics: int = 6,
        n_f0: int = 48,
        width: int = 16,
        n_blocks: int = 4,
        channels: list[int] | None = None,
        dropout: float = 0.3,
        chunk_seconds: float = 1.5,
        eval_overlap: float = 0.5,
        chunks_per_clip: int = 1,
        batch_size: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        max_epochs: int = 30,
        patience: int = 8,
        warmup_epochs: float = 1.0,
        augment_p: float = 0.5,
        amp: bool = True,
        torch_compile: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.model = model
        self.frontend = frontend
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.f_max = f_max
        self.n_bins = n_bins
        self.fmin = fmin
        self.n_harmonics = n_harmonics
        self.n_f0 = n_f0
        self.width = width
        self.n_blocks = n_blocks
        self.channels = channels
        self.dropout = dropout
        self.chunk_seconds = chunk_seconds
        self.eval_overlap = eval_overlap
        self.chunks_per_clip = chunks_per_clip
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.warmup_epochs = warmup_epochs
        self.augment_p = augment_p
        self.amp = amp
        self.torch_compile = torch_compile
        self.seed = seed
        self.device = device

    def input_spec(self, source_rate: int) -> DeepInput:
        """What the network reads, for audio at ``source_rate``: the key of its cached input."""
        kind = "wave" if self.model in WAVE_MODELS else self.frontend
        return DeepInput(kind, source_rate, self.sample_rate or source_rate, n_fft=self.n_fft,
                         hop_length=self.hop_length, n_mels=self.n_mels, f_max=self.f_max,
                         n_bins=self.n_bins, fmin=self.fmin)

    def train_config(self, spec: DeepInput, augment: str | None, desc: str) -> TrainConfig:
        """The trainer's settings for input ``spec``, chunk lengths in input frames."""
        chunk_samples = int(round(self.chunk_seconds * spec.sample_rate))
        chunk = spec.frames(chunk_samples)
        return TrainConfig(
            chunk=chunk, eval_hop=max(1, int(round(chunk * (1 - self.eval_overlap)))), hop=spec.hop,
            chunk_samples=chunk_samples, chunks_per_clip=self.chunks_per_clip,
            batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            max_epochs=self.max_epochs, patience=self.patience, warmup_epochs=self.warmup_epochs,
            amp=self.amp, augment=augment, augment_p=self.augment_p, sample_rate=spec.sample_rate,
            seed=self.seed, desc=desc, compile=self.torch_compile,
        )

    def build_network(self, n_classes: int, spec: DeepInput) -> torch.nn.Module:
        """A freshly initialised network reading ``spec`` (seed torch first for reproducible weights)."""
        in_bins = {"logmel": self.n_mels, "cqt": self.n_bins, "wave": 1}[spec.kind]
        return build_model(
            self.model, n_classes, in_bins, spec.sample_rate, n_fft=self.n_fft,
            hop_length=self.hop_length, n_harmonics=self.n_harmonics, n_f0=self.n_f0,
            width=self.width, n_blocks=self.n_blocks, channels=self.channels, dropout=self.dropout,
        )

    def bank(self, data: ClipData, spec: DeepInput, device: torch.device,
             transform: str | None = None) -> FeatureBank:
        """The clips' cached inputs under ``spec`` in one tensor."""
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
        self.trainer_ = Trainer(net, cfg, device, train.kind, list(train.classes), frontend)
        audio = None
        if train.augment:  # augmented views are computed from the audio
            wave = DeepInput("wave", spec.source_rate, spec.sample_rate)
            audio = self.bank(train, wave, torch.device("cpu"))
        bank = self.bank(train, spec, device)
        valid_bank = self.bank(valid, spec, device) if valid is not None else None
        self.trainer_.fit(bank, train.y, [c.track_id for c in train.clips], valid_bank,
                          None if valid is None else valid.y, epoch_callback, audio,
                          train.mask, None if valid is None else valid.mask)
        self.history_: list[dict[str, Any]] = self.trainer_.history
        self.best_epoch_ = self.trainer_.best_epoch
        self.n_parameters_ = sum(p.numel() for p in net.parameters())
        self.task_ = train.task.ref

    def uses_validation(self) -> bool:
        return True  # early stopping and the kept epoch

    def extractors(self, sample_rate: int) -> list[DeepInput]:
        """The network's input, cached per clip like any front end (a train-time
        augmentation also reads the clean waveform, inside ``fit``)."""
        return [self.input_spec(sample_rate)]

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
                  "n_parameters": self.n_parameters_}
        return json.loads(json.dumps(report, default=float))  # numpy scalars -> JSON numbers
