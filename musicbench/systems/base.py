"""The one interface every system family implements (scikit-learn's estimator style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

from musicbench.tasks.loader import Clip, Task


@dataclass
class ClipData:
    """Clips of one fold part with their targets, and the task that reads their audio.

    ``y`` is class indices (multiclass) or a 0/1 matrix (multilabel); None at predict time.
    """

    task: Task
    clips: list[Clip]
    classes: list[str]
    kind: str
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def audio(self, i: int) -> np.ndarray:
        return self.task.load_audio(self.clips[i])

    @property
    def sample_rate(self) -> int:
        return self.task.spec.clip.sample_rate

    def without_labels(self) -> ClipData:
        return ClipData(self.task, self.clips, self.classes, self.kind, None)


class System(BaseEstimator):
    """A music classifier. Parameters are plain constructor attributes (``get_params``).

    ``fit(train, valid=None)`` learns from ``train`` (``valid`` is for early stopping and
    checkpoint selection, never the test fold); ``predict_scores(data)`` returns
    ``[n_clips, n_classes]`` scores: probabilities for multiclass, independent per-tag
    scores for multilabel. ``seed`` makes training deterministic on CPU; ``device``
    is where tensors live (``cpu``, ``cuda``, ``mps``).
    """

    kinds: tuple[str, ...] = ("multiclass", "multilabel")

    def fit(self, train: ClipData, valid: ClipData | None = None) -> System:
        raise NotImplementedError

    def predict_scores(self, data: ClipData) -> np.ndarray:
        raise NotImplementedError

    def check_kind(self, data: ClipData) -> None:
        from musicbench.errors import ConfigError

        if data.kind not in self.kinds:
            raise ConfigError(
                f"{type(self).__name__} handles {' and '.join(self.kinds)} tasks, not "
                f"{data.kind} ({data.task.ref})"
            )
