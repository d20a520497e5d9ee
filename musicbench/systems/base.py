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
    ``augment`` is a train-time augmentation spec that systems apply while fitting;
    ``deform`` a test-time deformation applied to every clip's audio as it is read
    (both in the grammar of ``musicbench.augment``; None for neither).
    """

    task: Task
    clips: list[Clip]
    classes: list[str]
    kind: str
    y: np.ndarray | None = None
    augment: str | None = None
    deform: str | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def audio(self, i: int) -> np.ndarray:
        """Clip i's audio under the task's clip policy, deformed if ``deform`` is set."""
        clip = self.clips[i]
        audio = self.task.load_audio(clip)
        if self.deform:
            from musicbench.augment import apply

            audio = apply(self.deform, audio, self.sample_rate, seed_for(clip.track_id, self.deform))
        return audio

    @property
    def sample_rate(self) -> int:
        return self.task.spec.clip.sample_rate

    def without_labels(self) -> ClipData:
        return ClipData(self.task, self.clips, self.classes, self.kind, None, None, self.deform)


def seed_for(*parts: str) -> int:
    """A stable 32-bit seed from strings (e.g. track id and transform), for per-clip rngs."""
    import hashlib

    return int.from_bytes(hashlib.sha1("|".join(parts).encode()).digest()[:4], "little")


class System(BaseEstimator):
    """A music classifier. Parameters are plain constructor attributes (``get_params``).

    ``fit(train, valid=None)`` learns from ``train`` (``valid`` is for early stopping and
    checkpoint selection, never the test fold); ``predict_scores(data)`` returns
    ``[n_clips, n_classes]`` scores: probabilities for multiclass, independent per-tag
    scores for multilabel. ``seed`` makes training deterministic on CPU; ``device``
    is where tensors live (``cpu``, ``cuda``, ``mps``).
    """

    kinds: tuple[str, ...] = ("multiclass", "multilabel")
    #: Set by the tuner on neural systems: called as ``epoch_callback(epoch, valid_score)``
    #: after each epoch; it may raise ``optuna.TrialPruned`` to stop a poor trial early.
    epoch_callback = None

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
