"""Multilabel targets with a label mask, and scikit-learn classifiers fitted tag by tag.

A ``mask`` is 1 where a clip's tag was annotated (OpenMIC-2018 marks the rest): an
unobserved (clip, tag) pair is neither a positive nor a negative, so every fit leaves
it out.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


def observed(y: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The boolean mask of observed (clip, tag) pairs; None observes them all."""
    return np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask).astype(bool)


class TagwiseClassifier(ClassifierMixin, BaseEstimator):
    """One binary ``estimator`` per tag, each fitted only on the clips that observed it.

    scikit-learn's ``OneVsRestClassifier`` cannot leave a clip out of some tags' fits,
    hence this one. A tag whose observed training clips hold a single class (or none)
    gets a constant score: that class (0 or 1; 0 with none), from both ``predict_proba``
    and ``decision_function``, as scikit-learn's one-vs-rest does.
    """

    def __init__(self, estimator: BaseEstimator):
        self.estimator = estimator

    def fit(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> TagwiseClassifier:
        x, y = np.asarray(x), np.asarray(y)
        keep = observed(y, mask)
        self.classes_ = np.arange(y.shape[1])
        self.estimators_: list[BaseEstimator | float] = []
        for tag in range(y.shape[1]):
            rows = np.flatnonzero(keep[:, tag])
            values = np.unique(y[rows, tag])
            if len(values) < 2:
                self.estimators_.append(float(values[0]) if len(values) else 0.0)
            else:
                self.estimators_.append(clone(self.estimator).fit(x[rows], y[rows, tag]))
        return self

    def _columns(self, x: np.ndarray, method: str) -> np.ndarray:
        cols = []
        for est in self.estimators_:
            if isinstance(est, float):
                cols.append(np.full(len(x), est))
            else:
                out = getattr(est, method)(x)
                cols.append(out[:, list(est.classes_).index(1)] if out.ndim == 2 else out)
        return np.column_stack(cols).astype(np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self._columns(x, "predict_proba")

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self._columns(x, "decision_function")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.predict_proba(x) >= 0.5).astype(np.int64)
