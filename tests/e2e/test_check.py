"""The regression gate: unchanged results pass; a planted accuracy drop and a planted slowdown fail.

The metric side runs a real (small) suite and writes its baseline with the CLI. The speed
side runs a real benchmark file through 'musicbench bench' twice, once with a planted
delay, and gates the second run against the first.
"""

from __future__ import annotations

import json
import shutil

import pytest

from musicbench.cli import main
from musicbench.results import CellRecord, ResultStore

SLEEP_BENCH = '''
import os
import time


def test_sleep(benchmark):
    delay = 0.004 + float(os.environ.get("PLANTED_DELAY", "0"))
    benchmark.pedantic(time.sleep, args=(delay,), rounds=5, iterations=1)
'''


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "run"
    assert main(["run", "--task", "synth_genre:mini", "--system", "mfcc-stats-logreg", "--protocol",
                 "kfold:4", "--seeds", "0", "--out", str(out), "--no-mlflow", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def baseline(run_dir):
    path = run_dir.parent / "baseline.json"
    args = ["check", "--results", str(run_dir), "--write-baseline", str(path), "--tolerance", "0.03"]
    assert main(args) == 0
    return path


def _plant(run_dir, tmp_path, field: str, change) -> str:
    """A copy of the run folder with ``field`` of every cell changed."""
    copy = tmp_path / "planted"
    shutil.copytree(run_dir, copy)
    for cell in (copy / "cells").glob("*.json"):
        rec = CellRecord.from_json(cell.read_text())
        if field in rec.metrics:
            rec.metrics[field] = change(rec.metrics[field])
        else:
            setattr(rec, field, change(getattr(rec, field)))
        cell.write_text(rec.to_json())
    return str(copy)


def test_baseline_holds_the_mean_and_split(baseline, run_dir):
    data = json.loads(baseline.read_text())
    (entry,) = data["entries"]
    cells = ResultStore(run_dir).records()
    assert entry["value"] == pytest.approx(sum(c.metrics["accuracy"] for c in cells) / len(cells), abs=1e-6)
    assert entry["split_hash"] == cells[0].split_hash and entry["cells"] == 4
    assert (entry["metric"], entry["tolerance"], entry["system"]) == ("accuracy", 0.03, "mfcc-stats-logreg")


def test_unchanged_results_pass(baseline, run_dir, capsys):
    assert main(["check", "--baseline", str(baseline), "--results", str(run_dir)]) == 0
    assert "check: PASS" in capsys.readouterr().out


def test_planted_accuracy_drop_fails(baseline, run_dir, tmp_path, capsys):
    planted = _plant(run_dir, tmp_path, "accuracy", lambda a: a - 0.05)
    assert main(["check", "--baseline", str(baseline), "--results", planted]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "-0.0500" in out and "check: FAIL" in out


def test_drop_within_tolerance_passes(baseline, run_dir, tmp_path):
    planted = _plant(run_dir, tmp_path, "accuracy", lambda a: a - 0.02)
    assert main(["check", "--baseline", str(baseline), "--results", planted]) == 0


def test_changed_split_is_not_compared(baseline, run_dir, tmp_path, capsys):
    planted = _plant(run_dir, tmp_path, "split_hash", lambda h: "0" * 16)
    assert main(["check", "--baseline", str(baseline), "--results", planted]) == 1
    assert "SPLIT CHANGED" in capsys.readouterr().out


def test_missing_system_fails(baseline, run_dir, tmp_path, capsys):
    planted = _plant(run_dir, tmp_path, "system", lambda s: "renamed")
    assert main(["check", "--baseline", str(baseline), "--results", planted]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_bad_input_exits_2(baseline, tmp_path):
    assert main(["check"]) == 2
    assert main(["check", "--baseline", str(baseline)]) == 2
    assert main(["check", "--baseline", str(tmp_path / "none.json"), "--results", str(tmp_path)]) == 2


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory):
    """Three real benchmark runs: a baseline, an unchanged rerun and one with a planted delay."""
    root = tmp_path_factory.mktemp("speed")
    (root / "test_sleep_bench.py").write_text(SLEEP_BENCH)
    runs = {}
    for name, delay in (("base", "0"), ("same", "0"), ("slow", "0.008")):
        mp = pytest.MonkeyPatch()
        mp.setenv("PLANTED_DELAY", delay)
        try:
            out = str(root / f"{name}.json")
            assert main(["bench", str(root / "test_sleep_bench.py"), "--out", out]) == 0
        finally:
            mp.undo()
        runs[name] = root / f"{name}.json"
    return runs


def test_unchanged_speed_passes(bench_runs, capsys):
    args = ["check", "--speed", str(bench_runs["same"]), "--speed-baseline", str(bench_runs["base"])]
    assert main(args) == 0
    assert "speed: pass" in capsys.readouterr().out


def test_planted_slowdown_fails(bench_runs, capsys):
    rc = main(["check", "--speed", str(bench_runs["slow"]), "--speed-baseline", str(bench_runs["base"])])
    out = capsys.readouterr().out
    assert rc == 1
    assert "SLOWER" in out and "speed: FAIL" in out


def test_speed_on_other_hardware_is_not_gated(bench_runs, tmp_path, capsys):
    data = json.loads(bench_runs["base"].read_text())
    data["hardware"]["cpu_model"] = "Some Other CPU"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    args = ["check", "--speed", str(bench_runs["slow"]), "--speed-baseline", str(other)]
    assert main(args) == 0
    assert "NOT GATED" in capsys.readouterr().out
    assert main([*args, "--any-hardware"]) == 1


def test_metric_and_speed_gates_combine(baseline, run_dir, bench_runs):
    ok = ["check", "--baseline", str(baseline), "--results", str(run_dir)]
    assert main([*ok, "--speed", str(bench_runs["same"]), "--speed-baseline", str(bench_runs["base"])]) == 0
    assert main([*ok, "--speed", str(bench_runs["slow"]), "--speed-baseline", str(bench_runs["base"])]) == 1
