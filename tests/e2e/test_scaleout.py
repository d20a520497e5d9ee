"""End to end on real servers: a suite runs through a Dask LocalCluster of two workers,
logging to an MLflow server backed by PostgreSQL, while two `musicbench tune` commands
tune one Optuna study in that PostgreSQL; one Dask worker is SIGKILLed mid-run. Then
every cell is in results.csv once, MLflow has one run per cell key, and the study has
exactly the trials asked for. Skipped, with the reason, only where PostgreSQL is not
installed (setup.sh installs it as root on Debian)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs import CHEAP_SVM, check_cells_once, check_one_run_per_cell, check_trials_once, cli_env
from servers import mlflow_server, postgres, postgres_bin

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed (no "
                       "/usr/lib/postgresql/*/bin/initdb); `bash setup.sh` as root installs Debian's "
                       "postgresql"),
]
N_CELLS, N_TRIALS = 15, 6


def kill_a_busy_worker(address: str, results: Path) -> dict:
    """SIGKILL a worker of the run's cluster while it computes a cell."""
    from distributed import Client

    with Client(address, timeout="30s") as client:
        deadline = time.time() + 300
        while time.time() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                done = len(list((results / "cells").glob("*.json"))) if (results / "cells").is_dir() else 0
                os.kill(pid, signal.SIGKILL)
                return {"worker": busy[0], "pid": pid, "cells_done_before": done}
            time.sleep(0.05)
    raise AssertionError("no worker ever computed a cell")


def test_suite_on_dask_with_mlflow_server_and_tuning_in_postgres(tmp_path):
    with postgres(("mlflow", "optuna")) as db:
        (tmp_path / "artifacts").mkdir()
        with mlflow_server(db["mlflow"], tmp_path / "artifacts") as tracking:
            (tmp_path / "systems").mkdir()
            (tmp_path / "systems" / "tune-svm.toml").write_text(CHEAP_SVM)
            env = {**cli_env(), "MLFLOW_TRACKING_URI": tracking, "MUSICBENCH_WORKSPACE": str(tmp_path)}
            tune = ["tune", "--task", "synth_genre:mini", "--system", "tune-svm", "--protocol",
                    "group-kfold:performer:3", "--folds", "1", "--trials", str(N_TRIALS), "--storage",
                    db["optuna"], "--study-name", "lab", "--quiet"]
            tuners = [subprocess.Popen([sys.executable, "-m", "musicbench", *tune, "--seed", str(s)],
                                       cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True) for s in (0, 1)]
            out = tmp_path / "out"
            run = subprocess.Popen(
                [sys.executable, "-m", "musicbench", "run", "--task", "synth_genre:mini", "--system",
                 "mfcc-stats-svm", "--system", "gmm", "--system", "mfcc-vq-svm", "--protocol", "kfold:5",
                 "--out", str(out), "--executor", "dask", "--jobs", "2"],
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(run.stderr), daemon=True)
            reader.start()
            deadline = time.time() + 300
            while not any("dask: scheduler" in line for line in lines):
                assert run.poll() is None and time.time() < deadline, "".join(lines)
                time.sleep(0.1)
            address = re.search(r"dask: scheduler (\S+),", "".join(lines))[1]
            killed = kill_a_busy_worker(address, out)
            assert run.wait(timeout=600) == 0, "".join(lines)
            reader.join()
            tune_errs = [t.communicate(timeout=600)[1] for t in tuners]
            assert [t.returncode for t in tuners] == [0, 0], tune_errs

            df = check_cells_once(out, N_CELLS)
            assert killed["cells_done_before"] < N_CELLS  # killed mid-run
            check_one_run_per_cell(tracking, "adhoc", df.cell_key)
            check_trials_once(db["optuna"], "lab", N_TRIALS, tracking)
            print(f"\nscale-out: {len(df)} cells in results.csv (each once), {len(df)} MLflow runs "
                  f"(one per cell key), {N_TRIALS} finished trials from 2 tune commands; killed worker "
                  f"{killed['worker']} (pid {killed['pid']}) after {killed['cells_done_before']} cell(s)")
