"""Leaderboards across tasks: mean rank, scores normalised per task, and the Friedman /
Nemenyi comparison over tasks x folds behind the critical-difference diagram.

A *task* here is one leaderboard table (task x version x protocol x split hash): the
same dataset under two protocols asks two different questions. Only clean variants
(no test-time deformation) take part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from musicbench.protocol.metrics import get_metric, primary_metric
from musicbench.report.stats import friedman_nemenyi
from musicbench.report.tables import iter_tables, iter_variants, table_kind, variant_label

NORMALISATION = "chance-to-best"


def task_label(key: dict) -> str:
    return f"{key['task']}:{key['version']} {key['protocol']} #{str(key['split_hash'])[:6]}"


def _chance(cells: pd.DataFrame, metric: str) -> float:
    fn = get_metric(metric).chance
    n_classes = next((len(c) for c in cells["classes"] if isinstance(c, list) and c), 0)
    return fn(n_classes) if fn is not None and n_classes else np.nan


def _scores(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task table, fold, clean variant): the primary metric, mean over seeds,
    signed so that higher is better, with the task's chance level."""
    rows = []
    for tkey, cells in iter_tables(results):
        kind = table_kind(cells)
        metric = get_metric(primary_metric(kind))
        task = task_label(tkey) + (" (clustering)" if kind == "clustering" else "")  # a task of its own
        sign = 1.0 if metric.higher_is_better else -1.0
        chance = _chance(cells, metric.name)
        for vkey, g in iter_variants(cells):
            if vkey["deform"] != "none":
                continue
            variant = variant_label(vkey["system"], vkey["augment"], "none", vkey["tuned_kind"])
            for fold, f in g.groupby("fold"):
                rows.append({"task": task, "fold": int(fold), "metric": metric.name,
                             "variant": variant,
                             "score": sign * float(f[metric.name].astype(float).mean()),
                             "chance": sign * chance})
    return pd.DataFrame(rows, columns=["task", "fold", "metric", "variant", "score", "chance"])


def across_tasks(results: pd.DataFrame) -> pd.DataFrame:
    """One row per variant over every task it ran on: tasks covered, mean rank (1 = best in
    a task, ties share), mean normalised score and the normalised score per task.

    A task's normalised score is (score - chance) / (best - chance), HEAR style: 0 is
    what random guessing scores in expectation (1/classes for accuracy, 0.5 for ROC-AUC),
    1 the best variant on that task. Empty with fewer than two tasks.
    """
    s = _scores(results)
    if s["task"].nunique() < 2:
        return pd.DataFrame()
    per_task = s.groupby(["task", "variant"], sort=True).agg(score=("score", "mean"),
                                                             chance=("chance", "first")).reset_index()
    per_task["rank"] = per_task.groupby("task")["score"].rank(ascending=False, method="average")
    best = per_task.groupby("task")["score"].transform("max")
    span = best - per_task["chance"]
    per_task["normalised"] = np.where(span > 0, (per_task["score"] - per_task["chance"]) / span, np.nan)
    wide = per_task.pivot(index="variant", columns="task", values="normalised")
    summary = per_task.groupby("variant").agg(tasks=("task", "nunique"), mean_rank=("rank", "mean"),
                                              mean_normalised=("normalised", "mean"))
    out = summary.join(wide.add_prefix("normalised:")).reset_index()
    out.insert(1, "normalisation", NORMALISATION)
    out["of_tasks"] = s["task"].nunique()
    return out.sort_values(["tasks", "mean_rank"], ascending=[False, True]).reset_index(drop=True)


def critical_difference(results: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Friedman's test and the Nemenyi critical difference over blocks of task x fold.

    The test needs a complete design: it takes the variants that ran on the most tasks,
    the tasks all of them ran on, and the folds all of them have there. One row per
    variant with its mean rank over the blocks (and what was left out); empty with fewer
    than two variants or two blocks."""
    s = _scores(results)
    coverage = s.groupby("variant")["task"].nunique()
    if s.empty or coverage.max() < 2:
        return pd.DataFrame()
    complete = sorted(coverage.index[coverage == coverage.max()])
    grid = (s[s["variant"].isin(complete)]
            .pivot_table(index=["task", "fold"], columns="variant", values="score").dropna())
    if len(complete) < 2 or len(grid) < 2:
        return pd.DataFrame()
    test = friedman_nemenyi(grid[complete].to_numpy(), alpha)
    tasks = grid.index.get_level_values("task").unique()
    out = pd.DataFrame({"variant": complete, "mean_rank": test.mean_ranks, "blocks": test.blocks,
                        "tasks": len(tasks), "friedman_chi2": test.chi2, "friedman_p": test.p_value,
                        "critical_difference": test.critical_difference, "alpha": alpha,
                        "test": "Friedman + Nemenyi",
                        "left_out": ", ".join(sorted(set(coverage.index) - set(complete))
                                              + sorted(set(s["task"]) - set(tasks)))})
    return out.sort_values("mean_rank").reset_index(drop=True)
