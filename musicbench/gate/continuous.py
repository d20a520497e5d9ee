"""Same-machine speed comparison, in the manner of asv's ``continuous``: the benchmarks of a
base commit and of the working tree measured in one job on one machine, alternately.

A committed baseline recorded elsewhere says little on a busy or different CI machine;
two runs side by side share its load and its hardware, so their ratio is what changed in
the code. The base commit is exported with ``git archive`` into a temporary folder and
imported from there (``PYTHONPATH``), so the installed package is never touched.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from musicbench.errors import ConfigError, DataError
from musicbench.runtime import benchmark_env


def repo_root(start: Path) -> Path:
    """The git working tree holding ``start``."""
    res = subprocess.run(["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise ConfigError(f"--speed-base needs a git checkout: {start} is not in one ({res.stderr.strip()})")
    return Path(res.stdout.strip())


def export_commit(repo: Path, ref: str, dest: Path) -> str:
    """Write the tree of ``ref`` into ``dest``; returns the commit id."""
    res = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise ConfigError(f"--speed-base {ref!r}: not a commit of {repo} (a branch, tag or commit id, "
                          "e.g. origin/main or HEAD~1)")
    commit = res.stdout.strip()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def run_benchmarks(tree: Path, paths: list[str], out: Path, select: str | None = None) -> dict[str, Any]:
    """pytest-benchmark over ``paths`` (relative to ``tree``) with ``tree``'s own package."""
    cmd = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", "--benchmark-only",
           f"--benchmark-json={out}", "--rootdir", str(tree)]
    if select:
        cmd += ["-k", select]
    env = benchmark_env(PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if not out.is_file():
        raise DataError(f"benchmarks did not run in {tree} (pytest exit {res.returncode}):\n"
                        f"{(res.stdout + res.stderr)[-2000:]}")
    return json.loads(out.read_text())


def _fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One benchmark JSON from repeated runs: each benchmark's run with the lowest minimum
    (the run least disturbed by the machine's other work)."""
    best: dict[str, dict[str, Any]] = {}
    for data in runs:
        for b in data["benchmarks"]:
            name = b.get("fullname", b["name"])
            if name not in best or b["stats"]["min"] < best[name]["stats"]["min"]:
                best[name] = b
    return {**runs[0], "benchmarks": list(best.values())}


def measure_base_and_head(ref: str, paths: list[str], start: Path, rounds: int = 2,
                          select: str | None = None, log: Any = print) -> tuple[dict, dict, str]:
    """(base, head) benchmark JSONs of commit ``ref`` and of the working tree, measured
    alternately ``rounds`` times each on this machine; also the base commit id.
    Benchmark files absent at ``ref`` run for the head only (reported as new)."""
    from musicbench.throughput.hardware import describe

    head = repo_root(start)
    missing = [p for p in paths if not (head / p).exists()]
    if missing:
        raise ConfigError(f"--speed-bench: {', '.join(missing)} not found under {head}")
    with tempfile.TemporaryDirectory(prefix="musicbench-speed-base-") as tmp:
        base = Path(tmp) / "tree"
        commit = export_commit(head, ref, base)
        base_paths = [p for p in paths if (base / p).exists()]
        base_runs, head_runs = [], []
        for i in range(rounds):
            if base_paths:
                log(f"speed: round {i + 1}/{rounds}, base {ref} ({commit[:10]})")
                base_runs.append(run_benchmarks(base, base_paths, Path(tmp) / f"base{i}.json", select))
            log(f"speed: round {i + 1}/{rounds}, head (working tree {head})")
            head_runs.append(run_benchmarks(head, paths, Path(tmp) / f"head{i}.json", select))
    hardware = describe("cpu")
    base_data = _fastest(base_runs) if base_runs else {"benchmarks": []}
    return ({**base_data, "hardware": hardware, "commit": commit},
            {**_fastest(head_runs), "hardware": hardware}, commit)
