"""The plan memo: what a run planned, so that a rerun with nothing to do is known to be
one without planning it again.

Planning opens every task's clips (through mirdata) and resolves every split, which
costs more than the rest of a rerun that finds all its cells done. The memo keeps the
record keys a plan produced, under a signature of everything planning reads: the suite
and run options, the code version, the preset files, and the data and index files the
tasks' clips came from (size and mtime of each clip file, mtime of every folder of the
data home, so a file added, removed or changed anywhere there shows). A rerun whose
signature matches and whose every planned record is finished (and logged, when it
tracks) has nothing to do; any other rerun plans as usual and rewrites the memo.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from typing import Any

import musicbench
from musicbench.presets import KINDS, preset_files
from musicbench.results import ResultStore
from musicbench.runner.options import RunOptions
from musicbench.runtime import atomic_write, code_version

MEMO = "plan-memo.json"
ENV = ("MUSICBENCH_DATA_HOME", "MUSICBENCH_INDEX_DIR", "MUSICBENCH_WORKSPACE", "MUSICBENCH_CACHE")


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _folders(root: str) -> list[str]:
    """``root`` and every folder under it."""
    return [d for d, _, _ in os.walk(root)]


def _identity(suite: Any, opts: RunOptions) -> str:
    """What defines the plan apart from files on disk."""
    planning = {k: getattr(opts, k) for k in ("data_home", "index_dir", "allow_partial", "on_bad_track",
                                              "device")}
    what = {"suite": asdict(suite), "opts": planning, "version": musicbench.__version__,
            "code": code_version(), "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in ENV},
            "presets": {kind: {n: _stat(str(p)) for n, p in preset_files(kind).items()} for kind in KINDS}}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _files_state(files: list[str], folders: list[str]) -> list:
    return [[_stat(f) for f in files], [_stat(d) for d in folders]]


def inputs_of(clipsets: list[Any]) -> tuple[list[str], list[str]]:
    """The files (clips, indexes, a protocol's manifest) and folders (each data home's tree,
    each clip's folder) whose state the plan depends on."""
    files, folders = set(), set()
    for clips in clipsets:
        files.update(c.path for c in clips.clips)
        folders.update(os.path.dirname(c.path) for c in clips.clips)
        dataset = clips.task.dataset
        for attr in ("index_path",):
            if isinstance(getattr(dataset, attr, None), str):
                files.add(getattr(dataset, attr))
        home = getattr(dataset, "data_home", None)
        if isinstance(home, str) and os.path.isdir(home):
            folders.update(_folders(home))
    return sorted(files), sorted(folders)


def manifests(protocols: tuple[str, ...]) -> list[str]:
    return [p.split(":", 1)[1] for p in protocols if p.startswith("manifest:")]


def write(suite: Any, opts: RunOptions, keys: list[str], files: list[str], folders: list[str]) -> None:
    files = sorted({*files, *manifests(suite.protocols)})
    atomic_write(opts.out / MEMO, json.dumps({"identity": _identity(suite, opts), "files": files,
                                         "folders": folders, "state": _files_state(files, folders),
                                         "keys": keys}))


def planned_keys(suite: Any, opts: RunOptions) -> list[str] | None:
    """The record keys the memo holds for this run, or None when anything planning reads
    may have changed since it was written (or there is no memo)."""
    try:
        memo = json.loads((opts.out / MEMO).read_text())
    except (OSError, ValueError):
        return None
    if memo.get("identity") != _identity(suite, opts):
        return None
    if memo.get("state") != json.loads(json.dumps(_files_state(memo["files"], memo["folders"]))):
        return None
    return list(memo["keys"])


def finished(store: ResultStore, suite: Any, opts: RunOptions) -> int | None:
    """How many records the run has, when the memo shows every one of them finished (and
    logged to MLflow, when the run tracks): the run then has nothing to do, known without
    opening a task, resolving a split or importing MLflow. None otherwise."""
    if opts.verify:
        return None  # asked to check every file's checksum
    keys = planned_keys(suite, opts)
    if keys is None:
        return None
    records = [store.load(k) for k in keys]
    if all(r is not None and r.ok and (r.mlflow_run_id or not opts.track) for r in records):
        return len(records)
    return None
