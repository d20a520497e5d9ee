"""``bench/gpu-check.sh`` stays runnable where no GPU is: its dry run does every kind of
measurement at tiny sizes on the CPU (one preset, one encoder here, to stay quick) and
writes the JSON the GPU run writes; a spent budget lists what it skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from musicbench.throughput import gpucheck

from helpers import REPO

SCRIPT = REPO / "bench" / "gpu-check.sh"


def _script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


def test_dry_run_measures_every_kind_and_writes_json(tmp_path):
    out = tmp_path / "check.json"
    proc = _script("--dry-run", "--presets", "musicnn-ref", "--encoders", "aisfx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text())
    assert found["dry_run"] and found["device"] == "cpu" and found["hardware"]["cpu_cores"] >= 1
    assert not found["errors"] and not found["skipped"]
    for part in ("training", "inference"):
        configs = {(r["precision"], r["compiled"]) for r in found[part]}
        assert configs == {("float32", False), ("bf16", False), ("float32", True), ("bf16", True)}
        assert all(r["preset"] == "musicnn-ref" and r["clips_per_s"] > 0 for r in found[part])
    assert all(r["chunks_per_30s_clip"] >= 1 and r["frontend_clips_per_s"] > 0 for r in found["inference"])
    (enc,) = found["encoders"]
    assert enc["encoder"] == "aisfx" and enc["x_realtime"] > 0
    fit = found["fit"]
    assert fit["epochs"] == 1 and 0 <= fit["accuracy"] <= 1 and fit["n_test"] > 0


def test_spent_budget_skips_and_says_what(tmp_path):
    out = tmp_path / "none.json"
    assert gpucheck.main(["--dry-run", "--budget", "0", "--presets", "fcn-ref", "--encoders", "aisfx",
                          "--out", str(out)]) == 0
    skipped = [s["what"] for s in json.loads(out.read_text())["skipped"]]
    assert skipped == ["fcn-ref float32 eager", "fcn-ref bf16 eager", "encoder aisfx", "fit",
                       "fcn-ref float32 compiled", "fcn-ref bf16 compiled"]


def test_every_reference_preset_is_checked_and_unknown_names_are_refused(capsys):
    assert gpucheck.ref_presets() and all(p.endswith("-ref") for p in gpucheck.ref_presets())
    assert gpucheck.main(["--dry-run", "--presets", "cnn2d-small"]) == 2
    assert "fcn-ref" in capsys.readouterr().err  # the valid names are listed
