"""What the classical and density families share: cached frame features with deltas,
opened lazily (``ClipFrames``) so that a fit reads one clip at a time."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import partial

import numpy as np

from musicbench.features import FRONTENDS, FeatureCache, FrontEnd
from musicbench.features.lazy import ClipFrames, open_frames
from musicbench.features.summaries import add_deltas
from musicbench.runtime import single_threaded
from musicbench.systems.base import System
from musicbench.systems.params import COUNT, N_FFT, Names, Number, Param, Params
from musicbench.tasks import ClipData

#: the librosa front ends (names of ``FRONTENDS``) a clip's frames come from, their
#: settings, and delta / double-delta frames appended (``deltas``)
FRONT_END = Params(
    features=Param(("mfcc",), Names(tuple(FRONTENDS))),
    n_fft=Param(2048, N_FFT),
    hop_length=Param(512, COUNT),
    n_mels=Param(128, COUNT),
    n_mfcc=Param(20, COUNT),
    n_bins=Param(84, COUNT),
    deltas=Param(1, Number(0, 2, integer=True)),
)


class FrameFeatureSystem(System):
    """Base for systems built on librosa frame features (the ``FRONT_END`` parameters).

    Fitting and scoring run with one BLAS thread: these small-matrix models gain nothing
    from more, and spin-waiting threads slow them badly on a busy machine.
    """

    def _param_problems(self) -> list[str]:
        problems = super()._param_problems()
        if problems:
            return problems
        if self.hop_length > self.n_fft:
            problems.append(f"hop_length={self.hop_length!r} must be <= n_fft={self.n_fft}")
        if self.n_mfcc > self.n_mels:
            problems.append(f"n_mfcc={self.n_mfcc!r} must be <= n_mels={self.n_mels}")
        return problems

    def _runtime(self) -> AbstractContextManager:
        return single_threaded()

    def frontends(self, sample_rate: int) -> list[FrontEnd]:
        names = [self.features] if isinstance(self.features, str) else list(self.features)
        return [
            FrontEnd(n, sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                     n_mels=self.n_mels, n_mfcc=self.n_mfcc, n_bins=self.n_bins)
            for n in names
        ]

    def extractors(self, sample_rate: int) -> list[FrontEnd]:
        return self.frontends(sample_rate)

    def frames(self, data: ClipData, transform: str | None = None) -> ClipFrames:
        """Per clip: front-end frames, with delta / double-delta frames appended (read and
        computed when a clip is indexed)."""
        raw = open_frames(data, self.frontends(data.sample_rate), FeatureCache(), transform=transform)
        return raw.map(partial(_with_deltas, order=self.deltas))

    def sources(self, data: ClipData, transform: str | None = None) -> list[ClipFrames]:
        """The clips' frames per source, each summarised on its own: here one, the front ends."""
        return [self.frames(data, transform)]

    def training_sources(self, train: ClipData) -> tuple[list[ClipFrames], np.ndarray, np.ndarray | None]:
        """Training frames per source, targets and label mask (``train.mask``); with
        ``train.augment``, plus one augmented copy of every clip (seeded per clip, cached
        like any other feature) with the same targets and mask."""
        sources, y, mask = self.sources(train), train.y, train.mask
        if train.augment:
            augmented = self.sources(train, transform=train.augment)
            sources = [a + b for a, b in zip(sources, augmented, strict=True)]
            y = np.concatenate([y, y])
            mask = None if mask is None else np.concatenate([mask, mask])
        return sources, y, mask

    @staticmethod
    def expand_scores(scores: np.ndarray, seen: np.ndarray, n_classes: int, fill: float):
        """Scores over the classes seen in training -> scores over all task classes."""
        if scores.shape[1] == n_classes:
            return scores
        full = np.full((scores.shape[0], n_classes), fill, dtype=np.float64)
        full[:, seen] = scores
        return full


def _with_deltas(frames: np.ndarray, order: int) -> np.ndarray:
    return add_deltas(frames.astype(np.float64), order)
