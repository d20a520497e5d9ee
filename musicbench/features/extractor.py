"""The extractor seam: anything that turns a clip's audio into frames plugs in here.

``extract_frames`` caches, parallelises and error-reports for any ``Extractor``: the
librosa front ends of ``musicbench.features.frontends`` today, and encoders (an adapter
turning timestamp embeddings into frames) alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class Extractor(ABC):
    """Audio of one clip (the task's clip policy applied) -> ``[frames, dims]`` float32.

    ``config()`` must hold everything that changes the output (parameters, sample rate,
    a digest of any weights): with the audio's content and the clip policy it is the
    cache key, so two extractors with equal ``name`` and ``config()`` must agree.

    ``process_parallel`` says whether extraction may fan out to worker processes, one
    clip per task (right for CPU-bound, single-threaded front ends). An extractor that
    sets it False runs in the calling process, ``batch_size`` clips per ``batch`` call
    (right for a model that is expensive to load or copy, or that batches on a device).
    """

    name: str
    device: str = "cpu"  # where it computes: recorded with each cache entry's cost
    process_parallel: ClassVar[bool] = True
    batch_size: ClassVar[int] = 16

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able description of everything that defines the output."""

    @abstractmethod
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """One clip's audio -> ``[frames, dims]`` float32."""

    def batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Several clips at once (clips may differ in length); override to batch for real."""
        return [self(a) for a in audios]

    def cache_config(self) -> dict[str, Any]:
        """The cache key's extractor part: the name, so extractors never share entries,
        and the config."""
        return {"name": self.name, **self.config()}
