"""The cluster family and the clustering metrics: k-means on a representation, scored by
V-measure, NMI and ARI against the labels, through the runner and the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicbench.errors import ConfigError
from musicbench.protocol.metrics import evaluate, metrics_for, primary_metric
from musicbench.report.load import load_folders
from musicbench.report.tables import leaderboard
from musicbench.runner.execute import Runner, RunOptions
from musicbench.runner.suite import Suite
from musicbench.systems import build_system
from musicbench.systems.cluster import kmeans

from helpers import multilabel

CLASSES = ["a", "b", "c", "d", "e"]


def _blobs(seed: int, spread: float, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points per class around five centres 10 apart in 16 dimensions."""
    rng = np.random.default_rng(seed)
    centres = 10.0 * rng.standard_normal((len(CLASSES), 16))
    y = np.repeat(np.arange(len(CLASSES)), n)
    return centres[y] + spread * rng.standard_normal((len(y), 16)), y


def _score(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    clusters = kmeans(x, len(CLASSES), seed=seed)
    return evaluate("clustering", y, np.eye(len(CLASSES))[clusters], CLASSES)


def test_well_separated_embeddings_score_near_one_and_shuffled_labels_near_zero():
    x, y = _blobs(0, spread=0.5)
    separated = _score(x, y)
    assert separated["v_measure"] > 0.99 and separated["nmi"] > 0.99 and separated["ari"] > 0.99
    shuffled = _score(x, np.random.default_rng(1).permutation(y))
    assert shuffled["v_measure"] < 0.02 and abs(shuffled["ari"]) < 0.02 and shuffled["nmi"] < 0.02
    overlapping = _score(*_blobs(0, spread=12.0))  # the score falls as the clusters merge
    assert shuffled["v_measure"] < overlapping["v_measure"] < separated["v_measure"]


def test_metrics_are_declared_once_with_v_measure_primary():
    assert primary_metric("clustering") == "v_measure"
    assert metrics_for("clustering") == ("v_measure", "nmi", "ari")
    x, y = _blobs(2, spread=6.0)
    result = _score(x, y)
    from sklearn import metrics

    clusters = kmeans(x, len(CLASSES))
    # NMI is the geometric one: the arithmetic one is the V-measure itself
    assert result["v_measure"] == pytest.approx(metrics.normalized_mutual_info_score(y, clusters))
    assert result["nmi"] == pytest.approx(
        metrics.normalized_mutual_info_score(y, clusters, average_method="geometric"))
    assert np.asarray(result["contingency"]).sum() == len(y)


def test_cluster_system_partitions_the_test_part_deterministically(synth_fold):
    train, valid, test = synth_fold
    system = build_system("mfcc-stats-cluster", seed=3).fit(train, valid)
    scores = system.predict_scores(test.without_labels())
    assert scores.shape == (len(test), len(test.classes))
    assert set(np.unique(scores)) <= {0.0, 1.0} and (scores.sum(axis=1) == 1).all()
    assert len(np.unique(scores.argmax(axis=1))) == len(np.unique(train.y))  # k = training classes
    again = build_system("mfcc-stats-cluster", seed=3).fit(train, valid).predict_scores(test.without_labels())
    np.testing.assert_array_equal(again, scores)
    assert system.evaluation_kind(test.kind) == "clustering"
    assert system.training_report()["k"] == len(np.unique(train.y))


def test_multilabel_tasks_are_refused_before_any_state(synth_fold):
    train, valid, _ = (multilabel(d) for d in synth_fold)
    system = build_system("aisfx-cluster")
    with pytest.raises(ConfigError, match="handles multiclass tasks, not multilabel"):
        system.fit(train, valid)
    assert not [k for k in vars(system) if k.endswith("_")]


def test_clustering_cells_get_their_own_leaderboard_beside_the_classifiers(tmp_path):
    suite = Suite("cluster-unit", ("synth_genre:mini",), ("mfcc-stats-cluster", "mfcc-stats-svm"),
                  ("group-kfold:performer",), (0, 1))
    runner = Runner(suite, RunOptions(out=tmp_path, quiet=True, track=False))
    runner.run()
    df = pd.read_csv(tmp_path / "results.csv")
    assert (df.status == "ok").all() and len(df) == 2 * 4 * 2
    cluster = df[df.system == "mfcc-stats-cluster"]
    assert (cluster.kind == "clustering").all() and cluster.v_measure.between(0, 1).all()
    assert cluster.accuracy.isna().all() and df[df.system == "mfcc-stats-svm"].v_measure.isna().all()
    rec = next(r for r in runner.store.records() if r.system == "mfcc-stats-cluster")
    assert rec.details["training"]["k"] == 6 and np.asarray(rec.details["contingency"]).shape == (6, 6)
    preds = pd.read_csv(tmp_path / rec.predictions)
    assert list(preds.columns) == ["track_id", "label", "cluster"]
    board = leaderboard(load_folders([tmp_path]))
    rows = board.set_index("system")
    assert rows.loc["mfcc-stats-cluster", "metric"] == "v_measure"
    assert rows.loc["mfcc-stats-svm", "metric"] == "accuracy"
    assert rows.loc["mfcc-stats-cluster", "cells"] == 8 and rows.loc["mfcc-stats-cluster", "seeds"] == 2
    lo, hi = rows.loc["mfcc-stats-cluster", ["v_measure_ci_low", "v_measure_ci_high"]]
    assert lo <= rows.loc["mfcc-stats-cluster", "v_measure_mean"] <= hi
    assert (board["rank"] == 1).all()  # each is the best (and only) row of its own table
