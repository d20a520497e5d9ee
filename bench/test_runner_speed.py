"""The runner against a plain script, and its executors against each other.

One job, measured in one session: ``synth_genre:bench`` (120 clips of 30 s; another task
with ``MUSICBENCH_SPEED_TASK``, e.g. ``synth_genre:mini`` to try the benchmark quickly),
MFCC statistics + SVM and MFCC VQ + SVM, stratified 5-fold (10 cells). ``plain_script.py``
does it with librosa and scikit-learn in one process; ``musicbench run`` does it with
``--executor processes`` on every core, logging to an existing MLflow store. Goals: a
cold-cache run at most 0.6x the script's time and a rerun with nothing to do at most
0.2x; a warm-cache run at most 1.15x its own floor, measured in the same session: the
imports a run needs (a fresh interpreter importing them) plus the cells' in-process time
(fit and score, the cache warm) divided by the workers. Then, on the same cells with the
cache warm: ``processes`` against ``serial`` (goal: >= 1.7x with two cores), and the Dask
``LocalCluster``'s overhead per cell against ``processes`` (goal: < 5%).

On a quiet machine: ``pytest bench/test_runner_speed.py --benchmark-only -s``; each
ratio is in the benchmark's ``extra_info`` (``--benchmark-json``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicbench.protocol.experiment import TaskSource
from musicbench.runner.execute import CellOutcome, Runner, RunOptions, run_cell
from musicbench.runner.executors import DaskExecutor, ProcessExecutor
from musicbench.runner.plan import plan_task
from musicbench.runner.suite import Suite

TASK = os.environ.get("MUSICBENCH_SPEED_TASK", "synth_genre:bench")
SYSTEMS = ("mfcc-stats-svm", "mfcc-vq-svm")
JOB = ["run", "--task", TASK, *(a for s in SYSTEMS for a in ("--system", s)), "--protocol", "kfold:5",
       "--executor", "processes", "--quiet"]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def job(tmp_path_factory, monkeypatch_module):
    """The clips' list for the script, an environment with its own cache (this process
    uses it too), an MLflow store that exists already (a lab's), and the script's time."""
    from musicbench.results.tracking import Tracker
    from musicbench.tasks import get_task

    root = tmp_path_factory.mktemp("speed")
    monkeypatch_module.setenv("MUSICBENCH_CACHE", str(root / "cache"))
    clips = get_task(TASK).clips()  # generated outside the timings
    (root / "clips.csv").write_text("path,label\n" + "".join(f"{c.path},{c.label}\n" for c in clips.clips))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    Tracker("adhoc", uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / "plain_script.py"), str(root / "clips.csv")], check=True,
                   env=env, capture_output=True)
    return {"root": root, "env": env, "script": time.perf_counter() - t0}


def musicbench(job: dict, out: str) -> None:
    subprocess.run([sys.executable, "-m", "musicbench", *JOB, "--out", str(job["root"] / out)],
                   cwd=job["root"], env=job["env"], check=True, capture_output=True)


def ratio(benchmark, job: dict, goal: float | None) -> float:
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(seconds=round(seconds, 2), script_seconds=round(job["script"], 2),
                                ratio=round(seconds / job["script"], 3), goal=goal)
    print(f"\n{benchmark.name}: {seconds:.2f} s, {seconds / job['script']:.3f}x the script's "
          f"{job['script']:.2f} s (goal {goal})")
    return seconds / job["script"]


# what a warm run imports beyond the cells' own code: the CLI, the runner, MLflow, the
# leaderboard's statistics and the systems' libraries
RUN_IMPORTS = ("musicbench.cli", "musicbench.runner.execute", "mlflow", "musicbench.report.leaderboard",
               "musicbench.report.load", "musicbench.systems.classical", "librosa", "sklearn.svm")


def test_cold_run_against_the_plain_script(benchmark, job):
    def fresh():
        shutil.rmtree(job["root"] / "cache" / "features", ignore_errors=True)
        shutil.rmtree(job["root"] / "cold", ignore_errors=True)

    benchmark.pedantic(musicbench, args=(job, "cold"), setup=fresh, rounds=1, iterations=1)
    assert ratio(benchmark, job, 0.6) <= 0.6


def floor(job: dict, plans: list) -> dict:
    """A warm run's floor: a fresh interpreter's imports plus the cells' in-process time
    (cache warm, each library already loaded) divided by the workers the run uses."""
    code = "; ".join(f"import {m}" for m in RUN_IMPORTS)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=job["env"], capture_output=True)
    imports = time.perf_counter() - t0
    run_cell(plans[0], list(plans[0].keys))  # this process's own lazy imports, untimed
    t0 = time.perf_counter()
    for plan in plans:
        run_cell(plan, list(plan.keys))
    cells = time.perf_counter() - t0
    workers = min(os.cpu_count() or 1, len(plans))
    return {"imports_s": round(imports, 3), "cells_s": round(cells, 3), "workers": workers,
            "floor_s": round(imports + cells / workers, 3)}


def test_warm_run_against_its_floor(benchmark, job, warm_plans):
    def fresh():
        shutil.rmtree(job["root"] / "warm", ignore_errors=True)

    base = floor(job, warm_plans)
    benchmark.pedantic(musicbench, args=(job, "warm"), setup=fresh, rounds=2, iterations=1)
    ratio(benchmark, job, None)
    overhead = benchmark.stats.stats.mean / base["floor_s"]
    benchmark.extra_info.update(**base, floor_ratio=round(overhead, 3), floor_goal=1.15)
    print(f"warm run {benchmark.stats.stats.mean:.2f} s against its floor {base['floor_s']:.2f} s "
          f"(imports {base['imports_s']:.2f} s + cells {base['cells_s']:.2f} s / {base['workers']}): "
          f"{overhead:.3f}x (goal 1.15)")
    assert overhead <= 1.15


def test_rerun_with_nothing_to_do_against_the_plain_script(benchmark, job):
    musicbench(job, "done")
    benchmark.pedantic(musicbench, args=(job, "done"), rounds=2, iterations=1)
    assert ratio(benchmark, job, 0.2) <= 0.2


@pytest.fixture(scope="module")
def warm_plans(job):
    """The job's cells, the cache warm."""
    musicbench(job, "warm-up")
    suite = Suite("speed", (TASK,), SYSTEMS, ("kfold:5",))
    return list(plan_task(suite, TaskSource(TASK), "cpu", print))


def test_processes_against_serial(benchmark, job, warm_plans, tmp_path):
    suite = Suite("speed", (TASK,), SYSTEMS, ("kfold:5",))

    def run(executor: str, out: str) -> None:
        Runner(suite, RunOptions(out=tmp_path / out, quiet=True, track=False, executor=executor,
                                 jobs=2)).run()

    t0 = time.perf_counter()
    run("serial", "serial")
    serial = time.perf_counter() - t0
    benchmark.pedantic(run, args=("processes", "processes"), rounds=1, iterations=1)
    speedup = serial / benchmark.stats.stats.mean
    benchmark.extra_info.update(serial_seconds=round(serial, 2), speedup=round(speedup, 2), goal=1.7,
                                cores=os.cpu_count())
    assert speedup >= 1.7, f"processes: {speedup:.2f}x serial"


def run_all(executor, plans) -> list[CellOutcome]:
    for i, plan in enumerate(plans):
        executor.submit(str(i), run_cell, plan, list(plan.keys))
    done = {}
    while len(done) < len(plans):
        done.update(executor.wait())
    return [done[str(i)] for i in range(len(plans))]


def test_dask_overhead_per_cell(benchmark, warm_plans):
    """Started executors (start-up is once per run, not per cell), the same cells."""
    with ProcessExecutor(2) as processes, DaskExecutor(2) as dask:
        run_all(processes, warm_plans[:2]), run_all(dask, warm_plans[:2])  # workers warm
        t0 = time.perf_counter()
        run_all(processes, warm_plans)
        base = time.perf_counter() - t0
        outcomes = benchmark.pedantic(run_all, args=(dask, warm_plans), rounds=1, iterations=1)
    assert all(r.ok for o in outcomes for r in o.records)
    overhead = (benchmark.stats.stats.mean - base) / len(warm_plans)
    relative = overhead / (base * 2 / len(warm_plans))  # against one cell's time on a worker
    benchmark.extra_info.update(processes_seconds=round(base, 3), overhead_per_cell_s=round(overhead, 4),
                                overhead_relative=round(relative, 4), goal=0.05)
    assert relative < 0.05, f"Dask adds {overhead * 1000:.0f} ms per cell ({relative:.1%})"
