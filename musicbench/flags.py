"""Command-line flags shared by several commands, declared once so they read the same
everywhere (``run``, ``tune``, ``report``, ``bench``, ``data``)."""

from __future__ import annotations

import argparse
import tomllib
from typing import Any

TRACKING_HELP = ("MLflow tracking URI (default $MLFLOW_TRACKING_URI, then sqlite:///./mlflow.db; "
                 "a lab server: http://HOST:5000)")


def seeds(text: str) -> list[int]:
    """Comma-separated integers; an empty list is refused rather than read as the default."""
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        out = []
    if not out:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected integers like 0,1,2")
    return out


def setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with a TOML value (``0.5``, ``true``, ``"rbf"``; a bare word is a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. chunk_seconds=1.0")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def add_data(p: argparse.ArgumentParser, partial: str | None = None) -> None:
    """--data-home and --index-dir; with ``partial`` (what runs), also --allow-partial."""
    p.add_argument("--data-home", help="folder of datasets (one subfolder per mirdata name) or one "
                   "dataset's folder; default $MUSICBENCH_DATA_HOME, then ~/mir_datasets/NAME")
    p.add_argument("--index-dir", help="folder holding mirdata index JSON files, for offline "
                   "machines; default $MUSICBENCH_INDEX_DIR")
    if partial:
        p.add_argument("--allow-partial", action="store_true",
                       help=f"{partial} on the tracks present when some of the index is missing on disk")
        p.add_argument("--on-bad-track", choices=["error", "skip"],
                       help="a damaged track (undecodable, empty, truncated, silent): refuse the task "
                            "(error) or leave the track out and record its id (skip); default: the "
                            "suite's, then the task's setting (error)")
        p.add_argument("--verify", action="store_true",
                       help="also check every audio file's md5 against the index (reads all the data)")


def add_device(p: argparse.ArgumentParser, choices: str = "cpu, cuda[:N] or mps") -> None:
    p.add_argument("--device", default="cpu", help=f"{choices} (default cpu)")


def add_tracking(p: argparse.ArgumentParser, optional: bool = True) -> None:
    """--tracking-uri, and --no-mlflow where logging is optional."""
    p.add_argument("--tracking-uri", help=TRACKING_HELP)
    if optional:
        p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return value


def add_executor(p: argparse.ArgumentParser, executors: dict[str, str]) -> None:
    """--executor, --jobs and --scheduler: where cells are computed (docs/scale-out.md);
    ``executors``: each registered executor's name and what it does."""
    p.add_argument("--executor", default="serial", choices=list(executors),
                   help="; ".join(f"{name}: {what}" for name, what in executors.items()))
    p.add_argument("--jobs", type=positive_int, metavar="N",
                   help="worker processes of processes / a dask LocalCluster, and feature "
                        "extraction processes (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (--executor dask)")
