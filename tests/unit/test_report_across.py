"""Leaderboards across tasks on results whose ranks and normalised scores are known.

Three two-class tasks, two folds each; per fold ``a`` scores 0.9, ``b`` 0.7 and ``c`` 0.5
(chance) except on task ``t3``, where ``c`` scores 0.8 and ``b`` 0.6. ``solo`` ran on
``t1`` only. A multilabel task ``tags`` has ``a`` at ROC-AUC 1.0 and ``b`` at 0.75.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from musicbench.cli import main
from musicbench.protocol.metrics import evaluate
from musicbench.report.across import across_tasks, critical_difference
from musicbench.report.build import build
from musicbench.report.load import load_folders
from musicbench.results import CellRecord, ResultStore

N = 20
SCORES = {"t1": {"a": 0.9, "b": 0.7, "c": 0.5, "solo": 0.95},
          "t2": {"a": 0.9, "b": 0.7, "c": 0.5},
          "t3": {"a": 0.9, "b": 0.6, "c": 0.8}}


def _save(store: ResultStore, task: str, system: str, fold: int, kind: str, y: np.ndarray,
          scores: np.ndarray, classes: list[str]) -> None:
    result = evaluate(kind, y, scores, classes)
    details = {k: v for k, v in result.items() if isinstance(v, (dict, list))}
    store.save(CellRecord.from_dict({
        "task": task, "version": "1", "protocol": "kfold:2", "split_hash": f"h-{task}", "fold": fold,
        "system": system, "seed": 0, "status": "ok", "kind": kind, "cell_key": f"{task}-{system}-{fold}",
        "n_train": N, "n_test": N, "fit_seconds": 1.0, "predict_seconds": 0.1, "classes": classes,
        "details": details, "finished_at": "2026-01-01T00:00:00",
        **{k: v for k, v in result.items() if k not in details}}))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("across")
    store = ResultStore(root)
    y = np.arange(N) % 2
    for task, systems in SCORES.items():
        for system, acc in systems.items():
            for fold in range(2):
                right = np.arange(N) < round(acc * N)
                _save(store, task, system, fold, "multiclass", y,
                      np.eye(2)[np.where(right, y, 1 - y)], ["x", "o"])
    tags = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    for fold in range(2):
        _save(store, "tags", "a", fold, "multilabel", tags, tags + 0.1, ["p", "q"])
        weak = tags.astype(float).copy()
        weak[:4, 0] = [0.2, 0.5, 0.1, 0.7]  # tag p: 1 of 4 positive/negative pairs misordered per block
        _save(store, "tags", "b", fold, "multilabel", tags, np.where(np.arange(20)[:, None] < 4, weak, tags),
              ["p", "q"])
    return root


@pytest.fixture(scope="module")
def results(run_dir):
    return load_folders([run_dir])


def test_mean_rank_normalised_score_and_coverage(results):
    table = across_tasks(results).set_index("variant")
    tasks = [c for c in table.columns if c.startswith("normalised:")]
    assert len(tasks) == 4 and set(table["of_tasks"]) == {4}
    assert table.loc["a", "tasks"] == 4 and table.loc["c", "tasks"] == 3 and table.loc["solo", "tasks"] == 1
    # ranks: t1 solo, a, b, c; t2 a, b, c; t3 a, c, b; tags a, b
    assert table.loc["a", "mean_rank"] == pytest.approx((2 + 1 + 1 + 1) / 4)
    assert table.loc["b", "mean_rank"] == pytest.approx((3 + 2 + 3 + 2) / 4)
    t1 = next(c for c in tasks if c.startswith("normalised:t1:1"))
    t3 = next(c for c in tasks if c.startswith("normalised:t3:1"))
    tg = next(c for c in tasks if c.startswith("normalised:tags:1"))
    # chance 0.5 for two classes: (0.7 - 0.5) / (0.95 - 0.5) on t1, where solo is best
    assert table.loc["b", t1] == pytest.approx(0.2 / 0.45)
    assert table.loc["c", t1] == pytest.approx(0.0)
    assert table.loc["c", t3] == pytest.approx(0.3 / 0.4)
    assert table.loc["a", tg] == pytest.approx(1.0)  # ROC-AUC: chance 0.5, best 1.0
    assert 0 < table.loc["b", tg] < 1
    assert math.isnan(table.loc["solo", t3])
    assert set(table["normalisation"]) == {"chance-to-best"}


def test_friedman_and_nemenyi_over_tasks_times_folds(results):
    cd = critical_difference(results).set_index("variant")
    # a, b ran on all four tasks, c on three, solo on one: a and b over 4 tasks x 2 folds
    assert list(cd.index) == ["a", "b"]
    assert set(cd["blocks"]) == {8} and set(cd["tasks"]) == {4}
    assert cd.loc["a", "mean_rank"] == 1.0 and cd.loc["b", "mean_rank"] == 2.0
    chi2 = cd["friedman_chi2"].iloc[0]
    assert chi2 == pytest.approx(8.0)  # 12 N / (k (k+1)) * (1 + 4 - 4.5) with N = 8, k = 2
    assert cd["friedman_p"].iloc[0] == pytest.approx(stats.chi2.sf(8.0, 1))
    assert cd["critical_difference"].iloc[0] == pytest.approx(1.959964 * math.sqrt(2 * 3 / (6 * 8)), rel=1e-4)
    assert cd["left_out"].iloc[0] == "c, solo"


def test_friedman_statistic_matches_scipy_on_three_systems(tmp_path):
    store = ResultStore(tmp_path)
    y = np.arange(N) % 2
    rng = np.random.default_rng(0)
    for task in ("u1", "u2", "u3"):
        for system in ("a", "b", "c"):
            for fold in range(2):
                right = rng.random(N) < 0.7
                _save(store, task, system, fold, "multiclass", y, np.eye(2)[np.where(right, y, 1 - y)],
                      ["x", "o"])
    results = load_folders([tmp_path])
    cd = critical_difference(results)
    grid = (results.pivot_table(index=["task", "fold"], columns="system", values="accuracy"))
    assert cd["friedman_chi2"].iloc[0] == pytest.approx(
        stats.friedmanchisquare(*grid.to_numpy().T).statistic)


def test_the_html_report_embeds_the_critical_difference_diagram(run_dir, tmp_path):
    assert main(["report", str(run_dir), "--format", "html,csv", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "Across tasks" in page and "Critical-difference diagram" in page
    assert "Friedman χ² = 8.00 over 8 blocks" in page
    assert pd.read_csv(tmp_path / "across_tasks.csv")["variant"].tolist()[0] == "a"
    assert len(pd.read_csv(tmp_path / "critical_difference.csv")) == 2


def test_one_task_has_no_cross_task_tables(results):
    one = results[results.task == "t1"]
    report = build(one, "one task")
    assert report["across_tasks"].empty and report["critical_difference"].empty
