"""'musicbench bench': runs a workspace's bench/ with the project's conftest, writes JSON with hardware."""

from __future__ import annotations

import json
import shutil

import pytest

from musicbench.cli import main

from helpers import REPO

BENCH = '''
def test_sum(benchmark, bench_device, hardware):
    benchmark.extra_info["clips_per_s"] = 123.0
    benchmark.extra_info["device"] = bench_device
    assert hardware["device"] == bench_device
    benchmark.pedantic(sum, args=(range(1000),), rounds=3, iterations=10)
'''
NAME = "bench/test_tiny.py::test_sum"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    ws = tmp_path_factory.mktemp("benchws")
    (ws / "bench").mkdir()
    shutil.copy(REPO / "bench" / "conftest.py", ws / "bench" / "conftest.py")
    (ws / "bench" / "test_tiny.py").write_text(BENCH)
    baseline = {"benchmarks": [{"fullname": NAME, "stats": {"min": 1e-9, "median": 1e-9, "mean": 1e-9}},
                               {"fullname": "bench/test_gone.py::test_old",
                                "stats": {"min": 1.0, "median": 1.0, "mean": 1.0}}]}
    (ws / "baseline.json").write_text(json.dumps(baseline))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws)
        rc = main(["bench", "--out", "out.json", "--compare", "baseline.json"])
    return rc, ws


def test_bench_writes_json_with_hardware(bench_run):
    rc, ws = bench_run
    assert rc == 0
    data = json.loads((ws / "out.json").read_text())
    (b,) = data["benchmarks"]
    assert b["fullname"] == NAME
    assert b["extra_info"] == {"clips_per_s": 123.0, "device": "cpu"}
    hw = data["hardware"]
    assert hw["device"] == "cpu" and hw["cpu_cores"] >= 1 and hw["cpu_model"]
    assert {"torch", "librosa", "scikit-learn", "numpy"} <= set(hw["versions"])
    assert data["machine_info"]["hardware"]["cpu_model"] == hw["cpu_model"]  # bench/conftest.py hook


def test_bench_compare_flags_slower_and_missing(bench_run):
    from musicbench.throughput.results import compare, format_diff, load

    _, ws = bench_run
    diffs = {d.name: d for d in compare(load(ws / "out.json"), load(ws / "baseline.json"))}
    assert diffs[NAME].status == "slower" and diffs[NAME].ratio > 1000
    assert diffs["bench/test_gone.py::test_old"].status == "missing"
    table = format_diff(list(diffs.values()), "min", 1.5)
    assert table.index("SLOWER") < table.index("MISSING")  # worst first


def test_bench_rejects_unavailable_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    assert main(["bench", "--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
