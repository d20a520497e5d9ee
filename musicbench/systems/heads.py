"""Classification heads on fixed-length vectors, as scikit-learn classifiers.

They fit into the same ``StandardScaler -> classifier`` pipeline as the scikit-learn
classifiers, so probes select and refit every head the same way. Multilabel heads take a
``mask`` (1 where a clip's tag was annotated, as OpenMIC-2018 marks it): an unobserved
(clip, tag) pair is neither a positive nor a negative, so it is left out of the fit.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from torch import nn


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


class TorchHead(ClassifierMixin, BaseEstimator):
    """Linear (``hidden=0``) or one-hidden-layer MLP head trained full-batch with AdamW.

    Multiclass targets (class indices) train a softmax; a 0/1 target matrix trains one
    sigmoid per tag, its loss the mean over the observed pairs of ``mask``. Full-batch
    steps on standardised clip vectors are deterministic on CPU for a given ``seed``.
    ``class_weight='balanced'`` reweights the softmax loss.
    """

    def __init__(self, hidden: int = 0, lr: float = 1e-3, weight_decay: float = 1e-4,
                 epochs: int = 300, dropout: float = 0.1, class_weight: str | None = None,
                 seed: int = 0):
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.dropout = dropout
        self.class_weight = class_weight
        self.seed = seed

    def _net(self, n_in: int, n_out: int) -> nn.Module:
        if not self.hidden:
            return nn.Linear(n_in, n_out)
        return nn.Sequential(nn.Linear(n_in, self.hidden), nn.ReLU(), nn.Dropout(self.dropout),
                             nn.Linear(self.hidden, n_out))

    def fit(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> TorchHead:
        torch.manual_seed(self.seed)
        self.multilabel_ = y.ndim == 2
        xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        if self.multilabel_:
            self.classes_ = np.arange(y.shape[1])
            target = torch.as_tensor(y, dtype=torch.float32)
            weight = None if mask is None else torch.as_tensor(observed(y, mask), dtype=torch.float32)

            def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                return masked_bce(logits, target, weight)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
            target = torch.as_tensor(codes, dtype=torch.long)
            balance = None
            if self.class_weight == "balanced":
                counts = np.bincount(codes, minlength=len(self.classes_))
                balance = torch.as_tensor(len(codes) / (len(counts) * counts), dtype=torch.float32)
            loss_fn = nn.CrossEntropyLoss(weight=balance)
        self.net_ = self._net(xt.shape[1], len(self.classes_))
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.net_.train()
        for _ in range(self.epochs):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(self.net_(xt), target)
            loss.backward()
            opt.step()
        self.net_.eval()
        self.loss_ = float(loss.item())
        return self

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = self.net_(torch.as_tensor(np.asarray(x), dtype=torch.float32))
        probs = torch.sigmoid(logits) if self.multilabel_ else logits.softmax(dim=1)
        return probs.double().numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(x)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]


def masked_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Binary cross-entropy averaged over the pairs ``weight`` observes (1) only: an
    unobserved pair adds nothing to the loss or its gradient, whatever its label."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)
