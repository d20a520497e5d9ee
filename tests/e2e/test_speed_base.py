"""The same-machine speed gate (``check --speed-base REF``) on a git repository whose head
plants a slowdown: base and head are both measured in the test, on this machine.

The repository holds this checkout's ``musicbench`` package and one small benchmark of
``musicbench.report.stats.mean_ci``; the head commit makes ``mean_ci`` sleep 5 ms.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import musicbench
from musicbench.cli import main

BENCH = '''import numpy as np

from musicbench.report.stats import mean_ci


def test_mean_ci(benchmark):
    benchmark(mean_ci, np.arange(50.0))
'''


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("speedrepo")
    shutil.copytree(Path(musicbench.__file__).parent, root / "musicbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "bench").mkdir()
    (root / "bench" / "test_stats_bench.py").write_text(BENCH)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    stats = root / "musicbench" / "report" / "stats.py"
    text = stats.read_text()
    text = text.replace("import math\n", "import math\nimport time\n", 1)
    text = text.replace('    v = np.asarray(values, dtype=float)\n',
                        '    time.sleep(0.005)\n    v = np.asarray(values, dtype=float)\n', 1)
    assert "time.sleep" in text
    stats.write_text(text)
    _git(root, "commit", "-qam", "planted slowdown")
    return root


def _check(repo: Path, monkeypatch, ref: str, capsys) -> tuple[int, str]:
    """Exit status and stdout + stderr."""
    monkeypatch.chdir(repo)
    rc = main(["check", "--speed-base", ref, "--speed-bench", "bench/test_stats_bench.py",
               "--max-slowdown", "1.5", "--speed-rounds", "1"])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_the_planted_slowdown_fails_the_same_machine_gate(repo, monkeypatch, capsys):
    rc, out = _check(repo, monkeypatch, "HEAD~1", capsys)
    assert rc == 1, out
    assert "SLOWER" in out and "both measured now on" in out
    ratio = float(out.split("test_mean_ci")[1].split("x")[1].split()[0])
    assert ratio > 10  # 5 ms of sleep against a few microseconds


def test_the_same_code_passes_it(repo, monkeypatch, capsys):
    rc, out = _check(repo, monkeypatch, "HEAD", capsys)
    assert rc == 0, out
    assert "speed: pass" in out


def test_a_ref_that_is_no_commit_is_a_usage_error(repo, monkeypatch, capsys):
    rc, out = _check(repo, monkeypatch, "no-such-branch", capsys)
    assert rc == 2 and "not a commit" in out
