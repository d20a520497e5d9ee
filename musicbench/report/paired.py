"""The paired test of one variant against another: cells matched on fold and seed, per-track
predictions read back from disk, and the test each kind's scores call for (exact sign-flip
on correctness, Wilcoxon on squared errors, paired bootstrap of macro ROC-AUC).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from musicbench.report.load import read_predictions
from musicbench.report.stats import (
    PairedTest,
    paired_auc_bootstrap,
    paired_correctness_test,
    paired_error_test,
)

PAIR = ["fold", "seed"]  # what matches two variants' cells


@lru_cache(maxsize=512)
def _predictions(path: str | None) -> pd.DataFrame | None:
    p = read_predictions(path)
    return None if p is None else p.drop_duplicates("track_id").set_index("track_id")


def _correct(p: pd.DataFrame) -> np.ndarray:
    return (p["label"].to_numpy() == p["prediction"].to_numpy()).astype(float)


def _multilabel_arrays(p: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Targets (from the ``a|b`` label column) and scores, tags in score-column order."""
    score_cols = [c for c in p.columns if c.startswith("score:")]
    tags = [c.removeprefix("score:") for c in score_cols]
    labels = [set(str(v).split("|")) if v else set() for v in p["label"]]
    y = np.array([[t in lab for t in tags] for lab in labels], dtype=float)
    return y, p[score_cols].to_numpy(dtype=float)


def _squared_errors(p: pd.DataFrame, scale: np.ndarray) -> np.ndarray:
    """Per track, each target's squared error over ``scale`` (the targets' variance in the
    part), averaged over the targets: the errors the mean R² adds up."""
    targets = [c.removeprefix("target:") for c in p.columns if c.startswith("target:")]
    y = p[[f"target:{t}" for t in targets]].to_numpy(dtype=float)
    pred = p[[f"prediction:{t}" for t in targets]].to_numpy(dtype=float)
    return ((y - pred) ** 2 / scale).mean(axis=1)


def _target_variance(p: pd.DataFrame) -> np.ndarray:
    v = p[[c for c in p.columns if c.startswith("target:")]].to_numpy(dtype=float).var(axis=0)
    return np.where(v > 0, v, 1.0)


def paired_test(a: pd.DataFrame, b: pd.DataFrame, kind: str) -> PairedTest | None:
    """Paired test of variant ``a`` against ``b`` over cells matched on fold and seed.

    Returns None where no matched cell has per-track predictions on disk, and for
    clusterings, whose scores are not sums over clips.
    """
    if kind == "clustering":
        return None
    cols = PAIR + ["predictions"]
    matched = a[cols].merge(b[cols], on=PAIR, suffixes=("_a", "_b"))
    diffs, pairs = [], []
    for fold, path_a, path_b in matched[["fold", "predictions_a", "predictions_b"]].itertuples(index=False):
        pa, pb = _predictions(path_a), _predictions(path_b)
        if pa is None or pb is None:
            continue
        shared = pa.index.intersection(pb.index)
        if shared.empty:
            continue
        pa, pb = pa.loc[shared], pb.loc[shared]
        if kind == "multiclass":
            diffs.append(pd.DataFrame({"fold": fold, "track_id": shared, "d": _correct(pa) - _correct(pb)}))
        elif kind == "regression":
            scale = _target_variance(pa)
            diffs.append(pd.DataFrame({"fold": fold, "track_id": shared,
                                       "d": _squared_errors(pa, scale) - _squared_errors(pb, scale)}))
        else:
            ya, sa = _multilabel_arrays(pa)
            _, sb = _multilabel_arrays(pb)
            pairs.append((ya, sa, sb))
    if kind in ("multiclass", "regression"):
        if not diffs:
            return None
        per_track = pd.concat(diffs).groupby(["fold", "track_id"])["d"].mean()  # mean over seeds
        if kind == "regression":
            return paired_error_test(per_track.to_numpy())
        return paired_correctness_test(per_track.to_numpy(), seeds=matched["seed"].nunique())
    return paired_auc_bootstrap(pairs) if pairs else None
