"""Concurrent commands never duplicate work: cell claims (leases), two `musicbench run`
on one results folder and one fresh MLflow store, two `musicbench tune` on one fresh
study. Real processes, real SQLite stores; the same checks run against PostgreSQL and
an MLflow server in test_scaleout.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from musicbench.results.claims import Claims

from jobs import CHEAP_SVM, check_cells_once, check_one_run_per_cell, check_trials_once, cli_env

RUN = ["run", "--task", "synth_genre:mini", "--system", "mfcc-stats-svm", "--system", "gmm",
       "--system", "mfcc-vq-svm", "--protocol", "kfold:5", "--out", "out"]


def test_a_live_claim_excludes_others_until_released_or_expired(tmp_path):
    a, b = Claims(tmp_path, ttl=0.5), Claims(tmp_path, ttl=0.5)
    assert a.acquire("cell") and a.acquire("cell")  # its own lease: renewed
    assert not b.acquire("cell") and b.holder("cell") == a.owner
    a.release("cell")
    assert b.acquire("cell") and not a.acquire("cell")
    time.sleep(0.6)  # b never renewed: expired, taken over
    assert a.acquire("cell")


def test_a_running_owner_renews_its_claims(tmp_path):
    other = Claims(tmp_path, ttl=0.6)
    with Claims(tmp_path, ttl=0.6) as owner:
        assert owner.acquire("cell")
        time.sleep(1.5)  # past two expiries: the renewer kept it
        assert not other.acquire("cell")
    assert other.acquire("cell")  # released on exit


def test_a_dead_process_s_claim_is_taken_over_at_once(tmp_path):
    code = (f"from musicbench.results.claims import Claims; Claims({str(tmp_path)!r}, ttl=600)"
            ".acquire('cell')")
    subprocess.run([sys.executable, "-c", code], check=True, env=cli_env())
    claims = Claims(tmp_path, ttl=600)
    assert json.loads((tmp_path / "claims" / "cell.lease").read_text())["expires"] > time.time() + 500
    assert claims.acquire("cell")


def cell_counts(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) cell\(s\) run, (\d+) already finished, 0 failed", stderr)
    assert m, stderr
    return int(m[1]), int(m[2])


@pytest.mark.slow
def test_two_runs_on_one_folder_compute_and_log_each_cell_once(tmp_path):
    """Both start together on a fresh folder and a fresh MLflow store; one runs cells in
    two processes. Every cell is computed by exactly one of them, logged once."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-m", "musicbench", *RUN, "--tracking-uri", uri, *extra],
                              cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for extra in ([], ["--executor", "processes", "--jobs", "2"])]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    counts = [cell_counts(e) for e in errs]
    assert sum(run for run, _ in counts) == 15, counts  # nothing computed twice
    assert all(run + skipped == 15 for run, skipped in counts)
    df = check_cells_once(tmp_path / "out", 15)
    check_one_run_per_cell(uri, "adhoc", df.cell_key)
    assert not list((tmp_path / "out" / "claims").glob("*.lease"))


@pytest.mark.slow
def test_two_tune_commands_on_one_fresh_study_make_exactly_the_trials_asked(tmp_path):
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "tune-svm.toml").write_text(CHEAP_SVM)
    storage, uri = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["tune", "--task", "synth_genre:mini", "--system", "tune-svm", "--protocol",
            "group-kfold:performer:3", "--folds", "1", "--trials", "7", "--storage", storage,
            "--study-name", "shared", "--tracking-uri", uri, "--quiet"]
    env = {**cli_env(), "MUSICBENCH_WORKSPACE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-m", "musicbench", *args, "--seed", str(seed)], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    check_trials_once(storage, "shared", 7, uri)
