"""The deep family as a ``System``: one class, the network chosen by ``model``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from musicbench.errors import ConfigError
from musicbench.systems.base import EpochCallback, System
from musicbench.systems.deep.models import MODELS, SPECTRAL_FRONTENDS, build_model
from musicbench.systems.deep.trainer import TrainConfig, Trainer, WaveBank, resolve_device
from musicbench.systems.params import (
    COUNT,
    FRACTION,
    N_FFT,
    NON_NEGATIVE,
    POSITIVE,
    Number,
    OneOf,
    Rule,
)
from musicbench.tasks import ClipData


def clip_waveforms(data: ClipData) -> list[np.ndarray]:
    """Every clip's mono audio, read through ``data.audio`` so test-time deformation applies."""
    waves = []
    for i in range(len(data)):
        audio = np.asarray(data.audio(i), dtype=np.float32)
        waves.append(audio.mean(axis=0) if audio.ndim > 1 else audio)
    return waves


class DeepSystem(System):
    """A CNN trained on fixed-length chunks of audio, scored per clip over all its chunks.

    ``model`` is one of ``cnn1d``, ``cnn2d``, ``samplecnn``, ``harmoniccnn`` (see
    ``musicbench.systems.deep.models.build_model``); ``frontend`` (``logmel`` or ``cqt``)
    feeds ``cnn1d``/``cnn2d``. Parameters a model does not use are ignored by it. Training
    uses ``train.augment`` on the fly for a random ``augment_p`` share of the chunks.
    After ``fit``, ``history_`` holds one dict of metrics per epoch, ``best_epoch_`` the
    epoch whose weights were kept and ``n_parameters_`` the network's size; the same
    three make up ``training_report()``. ``save(path)`` writes the fitted network as a
    checkpoint that the ``deep`` encoder family turns into an encoder.
    """

    param_rules: ClassVar[dict[str, Rule]] = {
        **System.param_rules,
        "model": OneOf(*MODELS),
        "frontend": OneOf(*SPECTRAL_FRONTENDS),
        "n_fft": N_FFT,
        "hop_length": COUNT,
        "n_mels": COUNT,
        "n_bins": COUNT,
        "fmin": POSITIVE,
        "n_harmonics": COUNT,
        "n_f0": COUNT,
        "width": COUNT,
        "n_blocks": COUNT,
        "dropout": Number(0, 1, high_open=True),
        "chunk_seconds": POSITIVE,
        "eval_overlap": Number(0, 1, high_open=True),
        "batch_size": Number(2, integer=True),  # batch norm needs two items
        "lr": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "max_epochs": COUNT,
        "patience": Number(0, integer=True),
        "warmup_epochs": NON_NEGATIVE,
        "augment_p": FRACTION,
        "amp": OneOf(True, False),
    }

    def __init__(
        self,
        model: str = "cnn2d",
        frontend: str = "logmel",
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 64,
        n_bins: int = 84,
        fmin: float = 32.70,
        n_harmonics: int = 6,
        n_f0: int = 48,
        width: int = 16,
        n_blocks: int = 4,
        dropout: float = 0.3,
        chunk_seconds: float = 1.5,
        eval_overlap: float = 0.5,
        batch_size: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        max_epochs: int = 30,
        patience: int = 8,
        warmup_epochs: float = 1.0,
        augment_p: float = 0.5,
        amp: bool = True,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.model = model
        self.frontend = frontend
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_bins = n_bins
        self.fmin = fmin
        self.n_harmonics = n_harmonics
        self.n_f0 = n_f0
        self.width = width
        self.n_blocks = n_blocks
        self.dropout = dropout
        self.chunk_seconds = chunk_seconds
        self.eval_overlap = eval_overlap
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.warmup_epochs = warmup_epochs
        self.augment_p = augment_p
        self.amp = amp
        self.seed = seed
        self.device = device

    def train_config(self, sample_rate: int, augment: str | None, desc: str) -> TrainConfig:
        """The trainer's settings for audio at ``sample_rate``, chunk lengths in samples."""
        chunk = int(round(self.chunk_seconds * sample_rate))
        return TrainConfig(
            chunk=chunk, eval_hop=max(1, int(round(chunk * (1 - self.eval_overlap)))),
            batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            max_epochs=self.max_epochs, patience=self.patience, warmup_epochs=self.warmup_epochs,
            amp=self.amp, augment=augment, augment_p=self.augment_p, sample_rate=sample_rate,
            seed=self.seed, desc=desc,
        )

    def build_network(self, n_classes: int, sample_rate: int) -> torch.nn.Module:
        """A freshly initialised network (seed torch first for reproducible weights)."""
        return build_model(
            self.model, n_classes, sample_rate, frontend=self.frontend, n_fft=self.n_fft,
            hop_length=self.hop_length, n_mels=self.n_mels, n_bins=self.n_bins, fmin=self.fmin,
            n_harmonics=self.n_harmonics, n_f0=self.n_f0, width=self.width, n_blocks=self.n_blocks,
            dropout=self.dropout,
        )

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        sr = train.sample_rate
        try:
            net = self.build_network(len(train.classes), sr)
        except ValueError as exc:
            raise ConfigError(f"{self.model}: {exc}") from None
        cfg = self.train_config(sr, train.augment, f"{self.model} {train.task.ref}")
        self.trainer_ = Trainer(net, cfg, device, train.kind, list(train.classes))
        bank = WaveBank(clip_waveforms(train), cfg.chunk, device)
        valid_bank = WaveBank(clip_waveforms(valid), cfg.chunk, device) if valid is not None else None
        self.trainer_.fit(bank, train.y, [c.track_id for c in train.clips], valid_bank,
                          None if valid is None else valid.y, epoch_callback)
        self.history_: list[dict[str, Any]] = self.trainer_.history
        self.best_epoch_ = self.trainer_.best_epoch
        self.n_parameters_ = sum(p.numel() for p in net.parameters())
        self.task_ = train.task.ref

    def save(self, path: str | Path) -> Path:
        """Save the fitted network as a checkpoint that the ``deep`` encoder family loads
        (``musicbench.systems.deep.checkpoint``)."""
        from musicbench.systems.deep.checkpoint import save_checkpoint

        return save_checkpoint(self, path)

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        bank = WaveBank(clip_waveforms(data), self.trainer_.cfg.chunk, self.trainer_.device)
        return self.trainer_.predict(bank)

    def training_report(self) -> dict[str, Any]:
        if not hasattr(self, "trainer_"):
            return {}
        report = {"history": self.history_, "best_epoch": self.best_epoch_,
                  "n_parameters": self.n_parameters_}
        return json.loads(json.dumps(report, default=float))  # numpy scalars -> JSON numbers
