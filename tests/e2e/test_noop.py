"""A rerun with nothing to do is known to be one without planning: it opens no task
(mirdata), fits nothing (scikit-learn), compiles no statistics (scipy.stats) and logs
nothing (MLflow). Checked on what the process imported, not on a timing; and a change to
the data or to the suite makes the run plan again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("mirdata", "mlflow", "scipy.stats", "sklearn", "pandas")
ARGS = ["run", "--task", "synth_genre:mini", "--system", "mfcc-stats-svm", "--protocol", "kfold:2",
        "--quiet"]
PROBE = """
import json, sys
from musicbench.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY
                                               or m in HEAVY)}))
"""


def _run(root: Path, *extra: str) -> tuple[dict, str]:
    env = {**os.environ, "MUSICBENCH_CACHE": str(root / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", code, *ARGS, "--out", str(root / "out"), *extra],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("noop")
    first, err = _run(root)  # computes and logs every cell
    assert "2 cell(s) run" in err and "mirdata" in first["heavy"] and "mlflow" in first["heavy"]
    return root


def test_rerun_with_nothing_to_do_imports_nothing_heavy(done):
    again, err = _run(done)
    assert "0 cell(s) run, 2 already finished, 0 failed" in err
    assert again["heavy"] == [], again["heavy"]
    board = (done / "out" / "leaderboard.md").read_text()
    assert "mfcc-stats-svm" in board


def test_a_changed_suite_or_changed_data_plans_again(done):
    more, err = _run(done, "--seeds", "0,1")  # a new seed: two new cells
    assert "2 cell(s) run, 2 already finished" in err and "mirdata" in more["heavy"]
    again, _ = _run(done, "--seeds", "0,1")
    assert again["heavy"] == []
    data = next((done / "cache" / "synth").iterdir())
    folder = next(p for p in data.iterdir() if p.is_dir())
    (folder / "added.txt").write_text("")  # a data folder changed: plan to be sure
    replanned, err = _run(done, "--seeds", "0,1")
    assert "0 cell(s) run, 4 already finished" in err and "mirdata" in replanned["heavy"]
