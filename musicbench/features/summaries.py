"""Summaries over time: a clip's [frames, dims] matrix becomes one fixed-length vector.

Each summary is an ablation axis of the classical family: mean/std pooling, frame-wise
differences (delta, double-delta), DCT over time (per dimension, or 2-D over the matrix),
and a K-means codebook histogram (vector quantisation) fitted on training frames only.
Clips come as any sequence of arrays, ``ClipFrames`` included (read from the cache
when indexed): every summary visits one clip at a time, and sampling frames reads the
clips one by one into a buffer the size of the sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.fft import dct, dctn

from musicbench.errors import ConfigError
from musicbench.features.lazy import frame_counts

SUMMARIES = ("stats", "dct", "dct2d", "vq")
POOLINGS = ("mean", "max", "meanmax")  # plain poolings, for embeddings that need no more


def add_deltas(frames: np.ndarray, order: int) -> np.ndarray:
    """Concatenate delta (order 1) and double-delta (order 2) frames."""
    if order not in (0, 1, 2):
        raise ConfigError(f"deltas={order}: must be 0, 1 or 2")
    parts = [frames]
    d = frames
    for _ in range(order):
        d = np.gradient(d, axis=0) if d.shape[0] > 1 else np.zeros_like(d)
        parts.append(d)
    return np.hstack(parts)


def stats(frames: np.ndarray) -> np.ndarray:
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])


def dct_time(frames: np.ndarray, k: int) -> np.ndarray:
    """First k DCT-II coefficients over time of each dimension, scaled like a mean."""
    t = frames.shape[0]
    coef = dct(frames, type=2, axis=0, norm="ortho") / np.sqrt(t)
    if t < k:
        coef = np.vstack([coef, np.zeros((k - t, frames.shape[1]), coef.dtype)])
    return coef[:k].T.ravel()


def dct_2d(frames: np.ndarray, k: int) -> np.ndarray:
    """The k x k lowest-order block of the 2-D DCT of the whole (time x dims) matrix."""
    t, d = frames.shape
    coef = dctn(frames, type=2, norm="ortho") / np.sqrt(t)
    block = np.zeros((k, k), coef.dtype)
    block[: min(k, t), : min(k, d)] = coef[:k, :k]
    return block.ravel()


def sample_frames(clips: Sequence[np.ndarray], limit: int, rng: np.random.Generator,
                  rows: Sequence[int] | None = None) -> np.ndarray:
    """The frames of clips ``rows`` (default: all) stacked, or ``limit`` of them drawn
    without replacement where there are more: the rows ``np.vstack`` followed by
    ``rng.choice(n, limit, replace=False)`` would give, in the same order, without
    stacking them all first."""
    rows = np.arange(len(clips)) if rows is None else np.asarray(rows, dtype=np.int64)
    counts = frame_counts(clips)[rows]
    total = int(counts.sum())
    if total <= limit:
        return np.vstack([clips[r] for r in rows])
    pick = rng.choice(total, limit, replace=False)
    order = np.argsort(pick, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    owner = np.searchsorted(bounds, pick[order], side="right") - 1
    out = None
    for k in np.unique(owner):
        at = order[owner == k]
        frames = clips[rows[k]]
        if out is None:
            out = np.empty((limit, *frames.shape[1:]), frames.dtype)
        out[at] = frames[pick[at] - bounds[k]]
    return out


class Codebook:
    """K-means vector quantiser of frames; a clip becomes its normalised code histogram."""

    def __init__(self, size: int, seed: int, max_frames: int = 50_000):
        if size < 2:
            raise ConfigError(f"codebook_size={size}: must be >= 2")
        self.size, self.seed, self.max_frames = size, seed, max_frames

    def fit(self, clips: Sequence[np.ndarray]) -> Codebook:
        from sklearn.cluster import MiniBatchKMeans

        frames = sample_frames(clips, self.max_frames, np.random.default_rng(self.seed)).astype(np.float32)
        self.mean_ = frames.mean(axis=0)
        self.std_ = frames.std(axis=0) + np.float32(1e-8)
        self.kmeans_ = MiniBatchKMeans(
            n_clusters=min(self.size, len(frames)), random_state=self.seed, n_init=3,
            batch_size=4096,
        ).fit((frames - self.mean_) / self.std_)
        return self

    def histogram(self, frames: np.ndarray) -> np.ndarray:
        codes = self.kmeans_.predict(((frames - self.mean_) / self.std_).astype(np.float32))
        hist = np.bincount(codes, minlength=self.size).astype(np.float64)
        return hist / hist.sum()


def summarise(frames: Sequence[np.ndarray], how: str, dct_coefficients: int = 4,
              codebook: Codebook | None = None) -> np.ndarray:
    """``[clips, dims]``: each clip's frames summarised by one of ``POOLINGS + SUMMARIES``
    (``vq`` needs a fitted ``codebook``)."""
    per_clip = {
        "mean": lambda f: f.mean(axis=0),
        "max": lambda f: f.max(axis=0),
        "meanmax": lambda f: np.concatenate([f.mean(axis=0), f.max(axis=0)]),
        "stats": stats,
        "dct": lambda f: dct_time(f, dct_coefficients),
        "dct2d": lambda f: dct_2d(f, dct_coefficients),
        "vq": lambda f: codebook.histogram(f),
    }
    if how not in per_clip:
        raise ConfigError(f"summary {how!r}: must be one of {', '.join(per_clip)}")
    if how == "vq" and codebook is None:
        raise ConfigError("summary 'vq' needs a codebook fitted on training frames")
    # rows written into one preallocated matrix: a list of per-clip rows stacked at the end
    # would hold every summary twice at the peak
    out = None
    for i, f in enumerate(frames):
        row = per_clip[how](f)
        if out is None:
            out = np.empty((len(frames), row.shape[-1]), dtype=row.dtype)
        out[i] = row
    if out is None:
        raise ConfigError("no clips to summarise")
    return out
