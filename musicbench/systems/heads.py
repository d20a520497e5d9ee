"""Torch heads on fixed-length vectors, as a scikit-learn classifier and regressor.

They fit into the same ``StandardScaler -> classifier`` pipeline as the scikit-learn
heads, so probes select and refit every head the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from torch import nn

from musicbench.systems.tagwise import observed


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
        return self._train(xt, target, loss_fn, len(self.classes_))

    def _train(self, xt: torch.Tensor, target: torch.Tensor, loss_fn, n_out: int) -> TorchHead:
        """Full-batch AdamW steps on ``loss_fn(net(x), target)``."""
        self.net_ = self._net(xt.shape[1], n_out)
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


class TorchRegressor(RegressorMixin, TorchHead):
    """The same linear or MLP head with one output per target, trained on standardised
    targets with ``loss`` ``mse`` or ``huber`` (robust to a few badly annotated clips);
    predictions come back in the targets' units."""

    def __init__(self, hidden: int = 0, lr: float = 1e-3, weight_decay: float = 1e-4,
                 epochs: int = 300, dropout: float = 0.1, loss: str = "mse", seed: int = 0):
        super().__init__(hidden=hidden, lr=lr, weight_decay=weight_decay, epochs=epochs,
                         dropout=dropout, seed=seed)
        self.loss = loss

    def fit(self, x: np.ndarray, y: np.ndarray) -> TorchRegressor:
        torch.manual_seed(self.seed)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        self.mean_, self.scale_ = y.mean(axis=0), np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
        target = torch.as_tensor((y - self.mean_) / self.scale_, dtype=torch.float32)
        loss_fn = nn.HuberLoss() if self.loss == "huber" else nn.MSELoss()
        return self._train(torch.as_tensor(np.asarray(x), dtype=torch.float32), target, loss_fn, y.shape[1])

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.net_(torch.as_tensor(np.asarray(x), dtype=torch.float32)).double().numpy()
        return out * self.scale_ + self.mean_
