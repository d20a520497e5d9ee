"""Frame features of many clips without holding them: per-clip arrays opened from the cache.

``open_frames`` makes sure every clip's entries exist (extracting the missing ones like
``extract_frames``), then hands back a ``ClipFrames``: a sequence whose items are read
from disk when indexed, so a task of any size is summarised, sampled or chunked one
clip at a time. Each item equals what ``extract_frames`` returns for that clip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from musicbench.errors import DataError
from musicbench.features.cache import CachedArray, FeatureCache
from musicbench.features.extract import _combine, clip_entry_keys, default_jobs, extract_frames
from musicbench.features.extractor import Extractor
from musicbench.tasks import ClipData


class ClipFrames(Sequence[np.ndarray]):
    """Per clip, the extractors' frames side by side (``columns``: one list of arrays per
    extractor), then ``then`` applied; read when indexed. ``lengths`` are the frame
    counts, known without reading any frames."""

    def __init__(self, extractors: list[Extractor], columns: list[list[CachedArray | np.ndarray]],
                 then: Callable[[np.ndarray], np.ndarray] | None = None):
        self.extractors, self.columns, self.then = extractors, columns, then
        self.lengths = np.array([min(len(col[i]) for col in columns) for i in range(len(columns[0]))],
                                dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        frames = _combine(self.extractors, [np.asarray(col[i]) for col in self.columns])
        return self.then(frames) if self.then is not None else frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> ClipFrames:
        """The same clips with ``fn`` applied to each after what is applied already."""
        first = self.then
        return ClipFrames(self.extractors, self.columns, fn if first is None else lambda f: fn(first(f)))

    def __add__(self, other: ClipFrames) -> ClipFrames:
        """The clips of both, in order (the same extractors and the same ``then``)."""
        return ClipFrames(self.extractors, [a + b for a, b in zip(self.columns, other.columns, strict=True)],
                          self.then)


def frame_counts(clips: Sequence[np.ndarray]) -> np.ndarray:
    """Frames per clip, read from ``ClipFrames`` without loading them."""
    return clips.lengths if isinstance(clips, ClipFrames) else np.array([len(c) for c in clips], np.int64)


def open_frames(data: ClipData, extractors: list[Extractor], cache: FeatureCache | None = None,
                transform: str | None = None) -> ClipFrames:
    """Every clip's frames from ``extractors`` as cached entries opened lazily.

    Missing entries are extracted first (with ``extract_frames``'s workers and its error
    for unreadable tracks); an entry found corrupt on opening is rebuilt once.
    """
    cache = cache or FeatureCache()
    transform = transform if transform is not None else data.deform
    extract_frames(data, extractors, cache, transform=transform, keep=False)
    per_clip = clip_entry_keys(data, extractors, transform, default_jobs())  # files checked just above
    keys = [list(col) for col in zip(*per_clip, strict=True)] if per_clip else [[] for _ in extractors]
    columns = [[cache.open(k) for k in col] for col in keys]
    broken = sorted({i for col in columns for i, entry in enumerate(col) if entry is None})
    if broken:
        redo = replace(data, clips=[data.clips[i] for i in broken], y=None, mask=None)
        extract_frames(redo, extractors, cache, transform=transform, keep=False)
        for col, ks in zip(columns, keys, strict=True):
            for i in broken:
                col[i] = cache.open(ks[i])
        lost = [data.clips[i].track_id for i in broken if any(col[i] is None for col in columns)]
        if lost:
            raise DataError(f"feature cache under {cache.root}: entries of {', '.join(lost[:5])} "
                            "could not be written and read back (disk full or a concurrent cleaner?)")
    return ClipFrames(extractors, columns)


__all__ = ["ClipFrames", "frame_counts", "open_frames"]
