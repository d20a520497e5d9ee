"""The metric registry: every metric declared once, with the task kinds it applies to,
its direction, whether it is the primary one, and how cells aggregate.

The results schema (CSV columns, MLflow metrics), the leaderboard's columns, the tuner's
objective and the gate's direction all derive from these declarations, in the way
lm-evaluation-harness declares ``metric_list`` with ``aggregation`` and
``higher_is_better``. Adding a metric is one ``@metric(...)`` function here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

import numpy as np

from musicbench.errors import UnknownNameError
from musicbench.registry import Registry
from musicbench.tasks.keys import is_key_set, key_relation_score


def _skm():
    """scikit-learn's metrics, imported on first use: the registry is read by processes
    that never score (the CLI, the MLflow logger)."""
    from sklearn import metrics

    return metrics


#: what records are scored as: the task kinds, and ``clustering`` (cluster assignments of a
#: multiclass task's clips against their labels, ``System.evaluation``)
KINDS = ("multiclass", "multilabel", "regression", "clustering")
AGGREGATIONS = {"mean": np.nanmean, "median": np.nanmedian, "sum": np.nansum}
RECALL_AT = (1, 5, 10)  # the k of the audio -> tag recall@k metrics
#: the retrieval view of a multilabel task: tag -> audio mAP, audio -> tag mAP, recall@k
RETRIEVAL = ("pr_auc_macro", "map_audio_to_tag", *(f"recall_at_{k}" for k in RECALL_AT))


@dataclass(frozen=True)
class Metric:
    """One metric of the evaluation protocol.

    ``fn(scored)`` computes it from a ``Scored`` fold part. ``primary`` marks the metric
    that ranks leaderboards, tunes and gates for its kinds (one per kind).
    ``leaderboard`` says whether the leaderboard shows it; ``bounds`` clip confidence
    intervals (None: unbounded, e.g. counts). ``chance(n_classes)`` is what guessing at
    random scores in expectation, the floor of scores normalised across tasks (None: it
    depends on more than the class count). ``applies(classes)`` narrows a metric to the
    tasks whose classes it can read (the key score: the 24 keys); None: every task of its kinds.
    """

    name: str
    kinds: tuple[str, ...]
    fn: Callable[[Scored], float]
    higher_is_better: bool = True
    primary: bool = False
    aggregation: str = "mean"
    leaderboard: bool = True
    bounds: tuple[float, float] | None = (0.0, 1.0)
    chance: Callable[[int], float] | None = None
    description: str = ""
    applies: Callable[[list[str]], bool] | None = None

    def applies_to(self, classes: list[str]) -> bool:
        return self.applies is None or bool(self.applies(classes))

    def aggregate(self, values: Any) -> float:
        arr = np.asarray(values, dtype=float)
        return float(AGGREGATIONS[self.aggregation](arr)) if np.isfinite(arr).any() else float("nan")

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` under this metric's direction."""
        return a > b if self.higher_is_better else a < b


METRICS: Registry[Metric] = Registry("metric", doc="what a record scores: each declared once with its "
                                     "task kinds, direction, bounds, aggregation and chance level")


def metric(kinds: tuple[str, ...], name: str | None = None, **declaration: Any) -> Callable:
    """Register the decorated ``fn(scored) -> float`` as a metric named ``name`` (default:
    the function's name)."""

    def register(fn: Callable[[Scored], float]) -> Callable[[Scored], float]:
        m = Metric(name or fn.__name__, kinds, fn, **declaration)
        if m.aggregation not in AGGREGATIONS:
            raise ValueError(f"metric {m.name}: aggregation must be one of {sorted(AGGREGATIONS)}")
        METRICS.register(m.name, m)
        return fn

    return register


@dataclass
class Scored:
    """A fold part's targets and a system's scores, with what metrics share: the multiclass
    confusion matrix, the multilabel tags that are scorable (both classes present among the
    clips that observed the tag: ``mask`` 1, or every clip without a mask), the regression
    scores per target (``classes`` are the target names, ``scores`` the predicted values),
    the clusters (one-hot scores: each clip's cluster is its highest column)."""

    kind: str
    y: np.ndarray
    scores: np.ndarray
    classes: list[str]
    mask: np.ndarray | None = None

    def __post_init__(self):
        if self.kind == "regression":
            self.per_target = {t: regression_scores(self.y[:, j], self.scores[:, j])
                               for j, t in enumerate(self.classes)}
        elif self.kind == "clustering":
            self.cluster = self.scores.argmax(axis=1)
        elif self.kind == "multiclass":
            labels = np.arange(len(self.classes))
            self.y_pred = self.scores.argmax(axis=1)
            self.confusion = _skm().confusion_matrix(self.y, self.y_pred, labels=labels)
            self.support = self.confusion.sum(axis=1)
            self.recall = np.divide(np.diag(self.confusion), self.support,
                                    out=np.full(len(self.classes), np.nan), where=self.support > 0)
        else:
            self.observed = np.ones_like(self.y, dtype=bool) if self.mask is None else self.mask.astype(bool)
            n_pos = (self.y * self.observed).sum(axis=0)
            self.usable = (n_pos > 0) & (n_pos < self.observed.sum(axis=0))
            self.per_tag = {}
            for j, tag in enumerate(self.classes):
                if self.usable[j]:
                    rows = self.observed[:, j]
                    y, sc = self.y[rows, j], self.scores[rows, j]
                    self.per_tag[tag] = {"roc_auc": float(_skm().roc_auc_score(y, sc)),
                                         "pr_auc": float(_skm().average_precision_score(y, sc))}

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Targets and scores of every observed (clip, tag) pair of the scorable tags."""
        keep = self.observed[:, self.usable]
        return self.y[:, self.usable][keep], self.scores[:, self.usable][keep]

    def tag_mean(self, key: str) -> float:
        vals = [v[key] for v in self.per_tag.values()]
        return float(np.mean(vals)) if vals else float("nan")

    def target_mean(self, key: str) -> float:
        """A regression score averaged over the targets (NaN where undefined for all)."""
        vals = np.array([v[key] for v in self.per_target.values()], dtype=float)
        return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")

    @cached_property
    def tag_rankings(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per clip with at least one observed positive tag: its observed tags' targets in
        the order of its scores, highest first (ties in tag order), and those scores."""
        out = []
        for y, sc, seen in zip(self.y, self.scores, self.observed, strict=True):
            y, sc = y[seen], sc[seen]
            if y.any():
                order = np.argsort(-sc, kind="stable")
                out.append((y[order], sc[order]))
        return out

    def recall_at(self, k: int) -> float:
        """Share of a clip's observed positive tags among its ``k`` best-scored observed
        tags, averaged over the clips with a positive tag."""
        vals = [y[:k].sum() / y.sum() for y, _ in self.tag_rankings]
        return float(np.mean(vals)) if vals else float("nan")


def _uniform_guess(n_classes: int) -> float:
    return 1.0 / n_classes


def _random_ranking(n_classes: int) -> float:
    return 0.5


@metric(("multiclass",), primary=True, chance=_uniform_guess,
        description="share of test clips classified correctly")
def accuracy(s: Scored) -> float:
    return float(_skm().accuracy_score(s.y, s.y_pred))


@metric(("multiclass",), chance=_uniform_guess,
        description="mean per-class recall over the classes present in the test part")
def balanced_accuracy(s: Scored) -> float:
    return float(np.nanmean(s.recall[s.support > 0]))


@metric(("multiclass",), description="F1 averaged over the classes present in the test part")
def macro_f1(s: Scored) -> float:
    present = np.arange(len(s.classes))[s.support > 0]
    return float(_skm().f1_score(s.y, s.y_pred, labels=present, average="macro", zero_division=0))


@metric(("multilabel",), primary=True, chance=_random_ranking,
        description="ROC-AUC averaged over the scorable tags")
def roc_auc_macro(s: Scored) -> float:
    return s.tag_mean("roc_auc")


@metric(("multilabel",), description="average precision averaged over the scorable tags: tag -> audio "
                                    "retrieval mAP (per tag, the clips ranked by score)")
def pr_auc_macro(s: Scored) -> float:
    return s.tag_mean("pr_auc")


@metric(("multilabel",), chance=_random_ranking,
        description="ROC-AUC over every observed (clip, tag) pair of the scorable tags")
def roc_auc_micro(s: Scored) -> float:
    if not s.usable.any():
        return float("nan")
    return float(_skm().roc_auc_score(*s.pairs()))


@metric(("multilabel",), description="average precision over every observed (clip, tag) pair of the "
                                    "scorable tags")
def pr_auc_micro(s: Scored) -> float:
    if not s.usable.any():
        return float("nan")
    return float(_skm().average_precision_score(*s.pairs()))


@metric(("multilabel",), higher_is_better=False, aggregation="sum", leaderboard=False, bounds=None,
        description="tags all-positive or all-negative in the test part, left out of the averages")
def n_tags_dropped(s: Scored) -> float:
    return int((~s.usable).sum())


@metric(("multilabel",), description="audio -> tag retrieval mAP: per clip with a positive tag, average "
                                    "precision of its observed tags ranked by score; averaged over clips")
def map_audio_to_tag(s: Scored) -> float:
    vals = [1.0 if y.all() else _skm().average_precision_score(y, sc) for y, sc in s.tag_rankings]
    return float(np.mean(vals)) if vals else float("nan")


def _random_top_k(k: int, n_classes: int) -> float:
    """A random ranking's expected recall@k: each positive is in the top k with chance k/n."""
    return min(1.0, k / n_classes)


def _recall_at(k: int, s: Scored) -> float:
    return s.recall_at(k)


for _k in RECALL_AT:
    metric(("multilabel",), name=f"recall_at_{_k}", chance=partial(_random_top_k, _k),
           description=f"audio -> tag recall@{_k}: share of a clip's observed positive tags among "
                       f"its {_k} best-scored observed tags, averaged over clips with a positive tag",
           )(partial(_recall_at, _k))


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R² (1 - residual / total sum of squares about the part's mean: a constant prediction
    of that mean scores 0, worse ones below 0), Pearson's r and the mean absolute error of
    one target; R² and r are NaN where the targets (or, for r, the predictions) are constant."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    residual = float(((y - pred) ** 2).sum())
    spread = float(y.std() * pred.std())
    r = float(np.mean((y - y.mean()) * (pred - pred.mean())) / spread) if spread > 0 else float("nan")
    return {"r2": 1.0 - residual / total if total > 0 else float("nan"), "pearson_r": r,
            "mae": float(np.abs(y - pred).mean())}


def _no_skill(n_targets: int) -> float:
    """Predicting the mean of the targets: R² 0 and no correlation."""
    return 0.0


@metric(("regression",), primary=True, chance=_no_skill, bounds=(-np.inf, 1.0),
        description="coefficient of determination R² per target, averaged over the targets "
                    "(0: the test part's mean; unbounded below)")
def r2(s: Scored) -> float:
    return s.target_mean("r2")


@metric(("regression",), chance=_no_skill, bounds=(-1.0, 1.0),
        description="Pearson correlation of predictions and targets, averaged over the targets")
def pearson_r(s: Scored) -> float:
    return s.target_mean("pearson_r")


@metric(("regression",), higher_is_better=False, bounds=(0.0, np.inf),
        description="mean absolute error in the targets' units, averaged over the targets")
def mae(s: Scored) -> float:
    return s.target_mean("mae")


def get_metric(name: str) -> Metric:
    return METRICS[name]


def metrics_for(kind: str, leaderboard_only: bool = False) -> tuple[str, ...]:
    """Names of the metrics of a task kind, the primary first, then in declaration order."""
    names = [m.name for m in METRICS.values() if kind in m.kinds and (m.leaderboard or not leaderboard_only)]
    return tuple(sorted(names, key=lambda n: not METRICS[n].primary))


def primary_metric(kind: str) -> str:
    for m in METRICS.values():
        if m.primary and kind in m.kinds:
            return m.name
    raise UnknownNameError("task kind", kind, KINDS)


def all_metric_names() -> tuple[str, ...]:
    """Every metric, grouped by kind in the order of ``KINDS`` (the results columns)."""
    seen: dict[str, None] = {}
    for kind in KINDS:
        seen.update(dict.fromkeys(metrics_for(kind)))
    return tuple(seen)


def _key_chance(n_classes: int) -> float:
    """A uniform guess among the 24 keys: the same key, its fifth, relative and parallel
    each once, (1 + 0.5 + 0.3 + 0.2) / 24."""
    return 2.0 / n_classes


@metric(("multiclass",), chance=_key_chance, applies=is_key_set,
        description="MIREX weighted key score: 1 same key, 0.5 a fifth above, 0.3 relative, "
                    "0.2 parallel, averaged over clips (key tasks: the 24 keys as classes)")
def mirex_key_score(s: Scored) -> float:
    weights = np.array([[key_relation_score(r, e) for e in s.classes] for r in s.classes])
    return float(weights[s.y, s.y_pred].mean())


def _no_better_than_chance(n_classes: int) -> float:
    return 0.0


@metric(("clustering",), primary=True,
        description="V-measure of the clusters against the labels: harmonic mean of homogeneity and "
                    "completeness (MAEB's clustering score; equal to NMI with arithmetic averaging)")
def v_measure(s: Scored) -> float:
    return float(_skm().v_measure_score(s.y, s.cluster))


@metric(("clustering",),
        description="normalised mutual information of the clusters and the labels, geometric mean "
                    "of the entropies (arithmetic averaging is the V-measure)")
def nmi(s: Scored) -> float:
    return float(_skm().normalized_mutual_info_score(s.y, s.cluster, average_method="geometric"))


@metric(("clustering",), chance=_no_better_than_chance, bounds=(-1.0, 1.0),
        description="adjusted Rand index of the clusters against the labels (0: chance, 1: the same "
                    "partition)")
def ari(s: Scored) -> float:
    return float(_skm().adjusted_rand_score(s.y, s.cluster))


def _details(s: Scored) -> dict[str, Any]:
    if s.kind == "regression":
        return {"per_target": {t: {k: (None if np.isnan(v) else v) for k, v in d.items()}
                               for t, d in s.per_target.items()}}
    if s.kind == "clustering":
        from sklearn.metrics.cluster import contingency_matrix

        return {"contingency": contingency_matrix(s.y, s.cluster).tolist()}
    if s.kind == "multiclass":
        return {"per_class_recall": {c: (None if np.isnan(r) else float(r))
                                     for c, r in zip(s.classes, s.recall, strict=True)},
                "confusion_matrix": s.confusion.tolist()}
    return {"n_tags_scored": int(s.usable.sum()), "per_tag": s.per_tag}


def evaluate(kind: str, y_true: np.ndarray, scores: np.ndarray, classes: list[str],
             mask: np.ndarray | None = None) -> dict[str, Any]:
    """Every metric of ``kind`` (floats) and the per-class / per-tag details (dicts, lists).

    A multilabel tag that is all-positive or all-negative in the test part has no defined
    AUC; it is left out of the macro averages and counted in ``n_tags_dropped``. A metric
    that does not apply to ``classes`` (``Metric.applies``) is left out. Where
    ``mask`` is 0 a clip's tag was not observed: that pair is left out of every metric.
    """
    if scores.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"system returned scores of shape {scores.shape}, expected {(len(y_true), len(classes))}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("system returned NaN or infinite scores")
    scored = Scored(kind, y_true, scores, classes, mask)
    out: dict[str, Any] = {name: METRICS[name].fn(scored) for name in metrics_for(kind)
                           if METRICS[name].applies_to(classes)}
    return {**out, **_details(scored)}
