"""Throughput of the report compiler: the leaderboard with per-track paired tests.

Four systems x five folds x two seeds on 200 test tracks per fold: reading 40 prediction
files and running the exact paired tests must stay well under a second per table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicbench.report import paired, tables
from musicbench.report.load import load_folders
from musicbench.results import CellRecord, ResultStore
from musicbench.runtime import atomic_write

SYSTEMS, FOLDS, SEEDS, TRACKS = 4, 5, 2, 200


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-results")
    store, rng = ResultStore(root), np.random.default_rng(0)
    for s in range(SYSTEMS):
        for fold in range(FOLDS):
            for seed in range(SEEDS):
                key = f"s{s}-f{fold}-r{seed}"
                truth = rng.integers(0, 2, TRACKS)
                pred = np.where(rng.random(TRACKS) < 0.7 + 0.05 * s, truth, 1 - truth)
                df = pd.DataFrame({"track_id": [f"f{fold}-{i}" for i in range(TRACKS)],
                                   "label": truth.astype(str), "prediction": pred.astype(str)})
                atomic_write(root / "predictions" / f"{key}.csv", df.to_csv(index=False))
                store.save(CellRecord.from_dict({
                    "task": "t", "version": "1", "protocol": "kfold:5", "split_hash": "h",
                            "fold": fold, "system": f"system-{s}", "seed": seed, "status": "ok",
                            "cell_key": key, "accuracy": float((pred == truth).mean()),
                            "n_test": TRACKS, "predictions": f"predictions/{key}.csv"}))
    return load_folders([root])


def test_leaderboard_with_paired_tests(benchmark, results):
    def compile_board():
        paired._predictions.cache_clear()
        return tables.leaderboard(results)

    board = benchmark.pedantic(compile_board, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["cells"] = SYSTEMS * FOLDS * SEEDS
    benchmark.extra_info["tracks_per_cell"] = TRACKS
    assert (board["vs_best"] == "worse").sum() >= 1
