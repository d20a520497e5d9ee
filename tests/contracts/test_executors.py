"""Executors: every one gives the serial results; a cell's exception is its failure; a
worker killed mid-call is retried and its call ends once; a call that kills every
worker is failed after a bounded number of deaths. Parametrised over every executor
(the serial one cannot survive a killed process: it is the process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from musicbench.runner.executors import EXECUTORS, MAX_DEATHS, WorkerDied, make_executor

from jobs import MINI, run

PARALLEL = [e for e in EXECUTORS if e != "serial"]


def square(x: int) -> int:
    return x * x


def boom(x: int) -> int:
    raise ValueError(f"bad input {x}")


def die_first(marker: str, x: int) -> int:
    """SIGKILL this worker the first time, succeed the next: a worker lost mid-call."""
    path = Path(marker)
    with path.open("a") as f:
        f.write("try\n")
    if path.read_text().count("try") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def die_always(marker: str) -> None:
    with Path(marker).open("a") as f:
        f.write("try\n")
    os.kill(os.getpid(), signal.SIGKILL)


def drain(ex, n: int) -> dict:
    out: dict = {}
    while len(out) < n:
        for key, result in ex.wait():
            assert key not in out, f"{key} ended twice"
            out[key] = result
    return out


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run(MINI, out, track=False)


@pytest.mark.parametrize("name", PARALLEL)
def test_parallel_executors_give_the_serial_results(name, serial_run, tmp_path):
    ref_out, ref = serial_run
    runner = run(MINI, tmp_path, executor=name, jobs=2, tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert runner.counts == ref.counts == {"ok": 8, "failed": 0, "skipped": 0}
    cols = ["cell_key", "accuracy", "macro_f1", "balanced_accuracy"]
    got = pd.read_csv(tmp_path / "results.csv")[cols].sort_values("cell_key", ignore_index=True)
    want = pd.read_csv(ref_out / "results.csv")[cols].sort_values("cell_key", ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert sorted(r.data.tags["musicbench.cell_key"] for r in runs) == sorted(got.cell_key)


@pytest.mark.parametrize("name", EXECUTORS)
def test_an_exception_is_that_call_s_result_and_the_others_go_on(name):
    with make_executor(name, jobs=2) as ex:
        ex.submit("ok", square, 3)
        ex.submit("bad", boom, 4)
        out = drain(ex, 2)
    assert out["ok"] == 9
    assert isinstance(out["bad"], ValueError) and "bad input 4" in str(out["bad"])


@pytest.mark.parametrize("name", PARALLEL)
def test_a_killed_worker_is_retried_and_its_call_ends_once(name, tmp_path):
    marker = tmp_path / "tries"
    with make_executor(name, jobs=2) as ex:
        ex.submit("victim", die_first, str(marker), 5)
        ex.submit("other", square, 6)
        out = drain(ex, 2)
    assert out == {"victim": 25, "other": 36}
    assert marker.read_text().count("try") == 2


@pytest.mark.parametrize("name", PARALLEL)
def test_a_call_killing_every_worker_is_failed_not_retried_forever(name, tmp_path):
    marker = tmp_path / "tries"
    with make_executor(name, jobs=2) as ex:
        ex.submit("killer", die_always, str(marker))
        for i in range(3):
            ex.submit(f"ok{i}", square, i)
        out = drain(ex, 4)
    assert isinstance(out["killer"], WorkerDied)
    assert marker.read_text().count("try") == MAX_DEATHS
    assert [out[f"ok{i}"] for i in range(3)] == [0, 1, 4]


def test_cli_refuses_bad_executor_options(tmp_path):
    from jobs import cli

    for args, msg in [(["--executor", "threads"], "invalid choice: 'threads'"),
                      (["--jobs", "0"], "expected a whole number >= 1"),
                      (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler is for --executor dask")]:
        res = cli("run", "--task", "synth_genre:mini", "--system", "gmm", "--out", "o", *args, cwd=tmp_path)
        assert res.returncode == 2 and msg in res.stderr, res.stderr
        assert not (tmp_path / "o" / "cells").exists()


AFTER_OPENMP = """
import torch
from musicbench.runner.executors import ProcessExecutor

def parallel_op(_):
    x = torch.randn(64, 1, 4000)
    return float(torch.nn.functional.pad(x, (0, 100000)).sum())

if __name__ == "__main__":
    torch.set_num_threads(2)
    parallel_op(0)  # this process's OpenMP threads now exist
    with ProcessExecutor(1) as ex:
        ex.threads = 2  # the worker runs parallel regions of two threads
        for i in range(2):
            ex.submit(str(i), parallel_op, i)
        done = []
        while len(done) < 2:
            done += ex.wait()
    print("done", len(done))
"""


def test_workers_start_clean_after_this_process_ran_openmp_threads(tmp_path):
    """torch's OpenMP threads ran here (as extracting deep inputs before the cells does):
    a worker forked from here would wait forever in its first multithreaded region."""
    script = tmp_path / "after_openmp.py"
    script.write_text(AFTER_OPENMP)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "done 2" in res.stdout, res.stderr
