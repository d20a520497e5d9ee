"""Whole jobs as the tests drive them: a small suite through the runner or the CLI, a
cheap tuning preset, and the checks that a job's results, MLflow runs and Optuna trials
each exist exactly once (shared by the concurrency, scale-out and executor suites)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd

from musicbench.runner.execute import Runner, RunOptions
from musicbench.runner.suite import Suite

MINI = Suite("unit", ("synth_genre:mini",), ("mfcc-stats-svm", "gmm"),
             ("group-kfold:performer",), (0,))


def run(suite: Suite, out: Path, **kw) -> Runner:
    runner = Runner(suite, RunOptions(out=out, quiet=True, **kw))
    runner.run()
    return runner


def cli_env() -> dict:
    """The session's environment without MLFLOW_TRACKING_URI: the CLI's default store."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def cli(*args, cwd, env: dict | None = None, **kw):
    return subprocess.run([sys.executable, "-m", "musicbench", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=600, **kw)


CHEAP_SVM = """
description = "MFCC stats + SVM with a classifier-only search space (fixed features: fast trials)"
family = "classical"

[params]
features = ["mfcc"]
n_mfcc = 13
deltas = 0
classifier = "svm"
kernel = "rbf"
C = 1.0
gamma = "scale"

[search_space]
C = { type = "float", low = 0.01, high = 100.0, log = true }
kernel = { type = "categorical", choices = ["rbf", "linear"] }
gamma = { type = "float", low = 1e-4, high = 1.0, log = true, when = { kernel = "rbf" } }
"""


def check_cells_once(out: Path, n_cells: int) -> pd.DataFrame:
    df = pd.read_csv(out / "results.csv")
    assert len(df) == n_cells and df.cell_key.is_unique and (df.status == "ok").all()
    return df


def check_one_run_per_cell(uri: str, experiment: str, keys) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    assert sorted(r.data.tags["musicbench.cell_key"] for r in runs) == sorted(keys)


def check_trials_once(storage: str, study: str, n: int, tracking_uri: str) -> None:
    from mlflow import MlflowClient

    from musicbench.tuning.tracking import EXPERIMENT, TRIAL_TAG

    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == n, [(t.number, t.state.name, t.user_attrs) for t in trials]
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parents = client.search_runs([exp], "tags.`musicbench.study_key` != ''")
    assert len(parents) == 1
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'",
                                  max_results=1000)
    assert sorted(int(r.data.tags[TRIAL_TAG]) for r in children) == sorted(t.number for t in finished)
