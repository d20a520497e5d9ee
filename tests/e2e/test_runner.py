"""The runner: cells, skipping finished work, failure isolation, MLflow, interruption."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from musicbench.results import columns
from musicbench.runner.suite import Suite

from helpers import REPO
from jobs import MINI, cli, cli_env, run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{out / 'mlflow.db'}"
    return out, uri, run(MINI, out, tracking_uri=uri)


def test_results_have_one_row_per_cell_with_the_contract_columns(finished):
    out, _, runner = finished
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == columns()
    assert len(df) == 2 * 4 and (df.status == "ok").all()  # 2 systems x 4 performer folds
    assert runner.counts == {"ok": 8, "failed": 0, "skipped": 0}
    assert df.split_hash.nunique() == 1 and (df.group_leakage == 0).all()
    # neither system learns from a validation part: both are fitted on it too
    assert (df.n_valid == 0).all() and (df.n_train + df.n_test == df.n_tracks_used).all()
    assert (df.n_train + df.n_valid + df.n_test == 72).all()
    assert df.accuracy.between(0, 1).all() and df.macro_f1.notna().all()
    for rec in runner.store.records():
        preds = pd.read_csv(out / rec.predictions)
        assert len(preds) == rec.n_test
        assert (preds.label == preds.prediction).mean() == pytest.approx(rec.metrics["accuracy"])
        assert sum(map(sum, rec.details["confusion_matrix"])) == rec.n_test


def test_only_systems_that_use_validation_keep_a_validation_part():
    from musicbench.systems import build_system

    assert not build_system("mfcc-stats-svm").uses_validation() and not build_system("gmm").uses_validation()
    assert build_system("cnn1d-small").uses_validation()
    assert build_system("aisfx-probe").uses_validation()  # its head's C is picked on it
    assert not build_system("aisfx-probe", C=1.0).uses_validation()


def test_rerun_skips_finished_cells_and_changes_nothing(finished):
    out, uri, _ = finished
    before = {p.name: p.read_text() for p in (out / "cells").glob("*.json")}
    again = run(MINI, out, tracking_uri=uri)
    assert again.counts == {"ok": 0, "failed": 0, "skipped": 8}
    assert {p.name: p.read_text() for p in (out / "cells").glob("*.json")} == before


def test_each_cell_is_one_mlflow_run_with_tags_params_and_artifacts(finished):
    from mlflow import MlflowClient

    out, uri, runner = finished
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("unit")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 8  # also after the rerun above: nothing logged twice
    recs = {r.mlflow_run_id: r for r in runner.store.records()}
    for r in runs:
        rec = recs[r.info.run_id]
        assert r.data.tags["split_hash"] == rec.split_hash
        assert r.data.tags["musicbench.cell_key"] == rec.cell_key
        assert "code_version" in r.data.tags and "version.torch" in r.data.tags
        assert r.data.tags["device"] == "cpu"
        assert r.data.metrics["accuracy"] == pytest.approx(rec.metrics["accuracy"])
        assert r.data.params["system"] == rec.system and r.data.params["fold"] == str(rec.fold)
        names = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert f"{rec.cell_key}.csv" in names and f"{rec.cell_key}.confusion.csv" in names


def test_a_crashing_cell_is_recorded_and_the_rest_go_on(tmp_path):
    """k-NN asked for more neighbours than a fold trains on fails in that cell only."""
    runner = run(Suite("crash", ("synth_genre:mini",), ("gmm", "mfcc-stats-knn"), ("kfold:3",),
                       params={"mfcc-stats-knn": {"n_neighbors": 60}}), tmp_path / "out", track=False)
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert runner.counts["failed"] == 3 and runner.counts["ok"] == 3
    failed = df[df.status == "failed"]
    assert (failed.system == "mfcc-stats-knn").all()
    assert failed.error.str.contains("n_neighbors").all()


def test_unknown_parameter_in_a_suite_fails_before_any_work(tmp_path):
    from musicbench.errors import UnknownNameError

    suite = Suite("bad", ("synth_genre:mini",), ("v",), variants={
        "v": {"system": "mfcc-stats-svm", "params": {"nope": 1}}})
    with pytest.raises(UnknownNameError, match="nope"):
        run(suite, tmp_path / "out", track=False)
    assert not (tmp_path / "out" / "cells").exists()


def test_variants_axes_and_deformations_are_separate_rows(tmp_path):
    suite = Suite("axes", ("synth_genre:mini",), ("stats", "stats-nodelta"),
                  ("group-kfold:performer:2",), deform=("none", "noise:10"),
                  variants={"stats": {"system": "mfcc-stats-svm"},
                            "stats-nodelta": {"system": "mfcc-stats-svm", "params": {"deltas": 0}}})
    runner = run(suite, tmp_path / "out", track=False)
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert runner.counts["ok"] == 2 * 2 * 2 and df.cell_key.nunique() == 8
    pivot = df.pivot_table(index=["system", "fold"], columns="deform", values="accuracy")
    assert (pivot["none"] != pivot["noise:10"]).any()  # the deformation reached the test audio


def test_same_seed_same_metrics(tmp_path, finished):
    out, _, _ = finished
    run(MINI, tmp_path / "again", track=False)
    a = pd.read_csv(out / "results.csv").sort_values("cell_key")
    b = pd.read_csv(tmp_path / "again" / "results.csv").sort_values("cell_key")
    assert list(a.cell_key) == list(b.cell_key)
    assert a.accuracy.tolist() == b.accuracy.tolist()


def test_killed_run_resumes_without_losing_or_duplicating_results(tmp_path):
    """SIGKILL a run after its first finished cell; the rerun completes only the rest."""
    args = ["run", "--task", "synth_genre:mini", "--system", "mfcc-stats-svm", "--system", "gmm",
            "--system", "mfcc-vq-svm", "--protocol", "group-kfold:performer", "--out", "out"]
    proc = subprocess.Popen([sys.executable, "-m", "musicbench", *args], cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = tmp_path / "out" / "cells"
    deadline = time.time() + 300
    while time.time() < deadline and not (cells.is_dir() and list(cells.glob("*.json"))):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survivors = {p.name: p.read_text() for p in cells.glob("*.json")}
    assert 1 <= len(survivors) < 12, "the run should have been killed part-way"
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{len(survivors)} already finished" in done.stderr
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(df) == 12 and df.cell_key.is_unique and (df.status == "ok").all()
    for name, text in survivors.items():  # finished results untouched (MLflow id aside)
        now = json.loads((cells / name).read_text())
        then = json.loads(text)
        then.pop("mlflow_run_id"), now.pop("mlflow_run_id")
        assert now == then
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # the default: ./mlflow.db
    runs = client.search_runs([client.get_experiment_by_name("adhoc").experiment_id],
                              "attributes.status = 'FINISHED'")
    assert sorted(r.data.tags["musicbench.cell_key"] for r in runs) == sorted(df.cell_key)
    assert not list((tmp_path / "out").rglob("*.tmp"))
    # nothing left to compute or log: no task opened, no feature code, torch or MLflow loaded
    again = cli(*args, cwd=tmp_path, env={**cli_env(), "PYTHONPROFILEIMPORTTIME": "1"})
    assert again.returncode == 0 and "0 cell(s) run, 12 already finished" in again.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in again.stderr.splitlines()
                if line.startswith("import time:")}
    assert "musicbench.cli" in imported
    assert not {"librosa", "torch", "mlflow", "mirdata", "sklearn"} & imported


def test_cli_errors_are_actionable(tmp_path):
    cases = [
        (["run", "--task", "nope", "--system", "mfcc-stats-svm"], "unknown task 'nope'"),
        (["run", "--task", "synth_genre:mini", "--system", "nope"], "valid systems: .*mfcc-stats-svm"),
        (["run", "--suite", "nope"], "valid suites: .*demo"),
        (["run", "--task", "synth_genre:mini", "--system", "gmm", "--protocol", "kfold:x"],
         "malformed|not an integer"),
        (["run", "--task", "synth_genre:mini", "--system", "gmm", "--protocol", "nonsense"],
         "valid protocols of synth_genre: .*kfold:K, manifest:PATH, official"),
        (["run", "--device", "cuda:0", "--task", "synth_genre:mini", "--system", "gmm"],
         "not available"),
        (["data", "status", "gtzan_genre", "--index-dir", str(tmp_path)], "index file .* not found"),
    ]
    for args, pattern in cases:
        res = cli(*args, "--no-mlflow", cwd=tmp_path) if args[0] == "run" else cli(*args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr
        import re

        assert re.search(pattern, res.stderr), (pattern, res.stderr)
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)


def test_neural_cells_log_their_epoch_curves(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    suite = Suite("curves", ("synth_genre:mini",), ("short-cnn",), ("group-kfold:performer:2",),
                  variants={"short-cnn": {"system": "cnn1d-small", "params": {"max_epochs": 3}}})
    runner = run(suite, tmp_path / "out", tracking_uri=uri)
    rec = runner.store.records()[0]
    history = rec.details["training"]["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3][: len(history)] and len(history) >= 2
    client = MlflowClient(uri)
    curve = client.get_metric_history(rec.mlflow_run_id, "epoch.train_loss")
    assert sorted(m.step for m in curve) == [row["epoch"] for row in history]
    assert client.get_run(rec.mlflow_run_id).data.metrics["n_parameters"] > 0


def test_multilabel_task_end_to_end(tmp_path, monkeypatch):
    """A workspace task spec reads the synthetic genres as tags: AUC columns, not accuracy."""
    spec = (REPO / "datasets" / "synth_genre.toml").read_text()
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "synth_tags.toml").write_text(
        spec.replace('kind = "multiclass"', 'kind = "multilabel"'))
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    runner = run(Suite("tags", ("synth_tags:mini",), ("mfcc-stats-logreg",),
                       ("group-kfold:performer:2",)), tmp_path / "out", track=False)
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert runner.counts["ok"] == 2
    assert df.roc_auc_macro.between(0.5, 1).all() and df.pr_auc_macro.notna().all()
    assert df.accuracy.isna().all() and (df.n_tags_dropped == 0).all()
    preds = pd.read_csv(tmp_path / "out" / runner.store.records()[0].predictions)
    assert {f"score:{g}" for g in ("ballad", "rock")} <= set(preds.columns)


def test_a_killed_writers_temporary_files_are_swept_and_a_live_ones_kept(tmp_path):
    from musicbench.runtime import _writer, sweep_orphaned_writes

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = tmp_path / "cells" / f".a.json.{_writer()}.x1y2z3.tmp"
    orphan = tmp_path / "claims" / f".b.lease.{_writer().replace(str(os.getpid()), str(dead.pid))}.q9.tmp"
    other = tmp_path / "cells" / ".c.json.w1-00000000.zz.tmp"  # another host's writer
    for p in (live, orphan, other):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{")
    assert sweep_orphaned_writes(tmp_path) == 1
    assert live.exists() and other.exists() and not orphan.exists()
