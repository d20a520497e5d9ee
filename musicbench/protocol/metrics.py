"""Metrics of the evaluation protocol, computed from per-track scores."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
MULTILABEL_METRICS = ("roc_auc_macro", "pr_auc_macro")


def primary_metric(kind: str) -> str:
    return "accuracy" if kind == "multiclass" else "roc_auc_macro"


def multiclass(y_true: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class recall and the confusion matrix."""
    labels = np.arange(len(classes))
    y_pred = scores.argmax(axis=1)
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.full(len(classes), np.nan), where=support > 0)
    present = support > 0
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(np.nanmean(recall[present])),
        "macro_f1": float(
            skm.f1_score(y_true, y_pred, labels=labels[present], average="macro", zero_division=0)
        ),
        "per_class_recall": {
            c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recall, strict=True)
        },
        "confusion_matrix": cm.tolist(),
    }


def multilabel(y_true: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Macro ROC-AUC and PR-AUC over tags with both classes present in the test fold.

    A tag that is all-positive or all-negative in the test fold has no defined AUC; it is
    left out of the macro average and counted in ``n_tags_dropped``.
    """
    n_pos = y_true.sum(axis=0)
    usable = (n_pos > 0) & (n_pos < y_true.shape[0])
    per_tag = {}
    for j, tag in enumerate(classes):
        if usable[j]:
            per_tag[tag] = {
                "roc_auc": float(skm.roc_auc_score(y_true[:, j], scores[:, j])),
                "pr_auc": float(skm.average_precision_score(y_true[:, j], scores[:, j])),
            }
    roc = [v["roc_auc"] for v in per_tag.values()]
    pr = [v["pr_auc"] for v in per_tag.values()]
    return {
        "roc_auc_macro": float(np.mean(roc)) if roc else float("nan"),
        "pr_auc_macro": float(np.mean(pr)) if pr else float("nan"),
        "n_tags_scored": int(usable.sum()),
        "n_tags_dropped": int((~usable).sum()),
        "per_tag": per_tag,
    }


def evaluate(kind: str, y_true: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict:
    if scores.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"system returned scores of shape {scores.shape}, expected {(len(y_true), len(classes))}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("system returned NaN or infinite scores")
    fn = multiclass if kind == "multiclass" else multilabel
    return fn(y_true, scores, classes)
