"""The one interface every system family implements (scikit-learn's estimator style)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from musicbench.tasks import ClipData


class System(BaseEstimator):
    """A music classifier. Parameters are plain constructor attributes (``get_params``).

    ``fit(train, valid=None)`` learns from ``train`` (``valid`` is for early stopping and
    checkpoint selection, never the test fold); ``predict_scores(data)`` returns
    ``[n_clips, n_classes]`` scores: probabilities for multiclass, independent per-tag
    scores for multilabel. ``seed`` makes training deterministic on CPU; ``device``
    is where tensors live (``cpu``, ``cuda``, ``mps``).
    """

    kinds: tuple[str, ...] = ("multiclass", "multilabel")

    def fit(self, train: ClipData, valid: ClipData | None = None, epoch_callback=None) -> System:
        raise NotImplementedError

    def predict_scores(self, data: ClipData) -> np.ndarray:
        raise NotImplementedError

    def training_report(self) -> dict:
        """What fitting learnt, JSON-safe, for the cell record and MLflow ({} by default)."""
        return {}

    def check_kind(self, data: ClipData) -> None:
        from musicbench.errors import ConfigError

        if data.kind not in self.kinds:
            raise ConfigError(
                f"{type(self).__name__} handles {' and '.join(self.kinds)} tasks, not "
                f"{data.kind} ({data.task.ref})"
            )
