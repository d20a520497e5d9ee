"""The one experiment loop: open a task's clips, resolve a protocol into a split, fit a
system on a fold's parts and score it. The runner, the tuner, the tests and the
benchmarks all use these, so the loop is written once.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from musicbench.protocol.metrics import evaluate
from musicbench.protocol.splits import Split, resolve
from musicbench.runtime import seed_everything
from musicbench.tasks import ClipData, ClipSet, get_task

Log = Callable[[str], None]


@dataclass(frozen=True)
class TaskSource:
    """Where a task's clips come from: enough to open them again in another process."""

    ref: str
    data_home: str | None = None
    index_dir: str | None = None
    allow_partial: bool = False
    on_bad_track: str | None = None  # None: the task spec's setting
    verify: bool = False  # md5 of every file against the index


@lru_cache(maxsize=8)
def open_clips(source: TaskSource) -> ClipSet:
    """The task's usable clips (memoised per process: tasks are read once per run)."""
    task = get_task(source.ref, source.data_home, source.index_dir)
    return task.clips(allow_partial=source.allow_partial, on_bad_track=source.on_bad_track,
                      verify=source.verify)


def resolve_split(protocol: str, clipset: ClipSet, log: Log | None = None) -> Split:
    """``protocol`` resolved on ``clipset``; its warnings (group leakage) go to ``log``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = resolve(protocol, clipset)
    for w in caught if log else ():
        log(f"WARNING: {w.message}")
    return split


def fit(est: Any, train: ClipData, valid: ClipData | None, seed: int,
        epoch_callback: Callable[[int, float], None] | None = None) -> float:
    """Seeds every generator, fits ``est`` and returns the seconds it took."""
    seed_everything(seed)
    t0 = time.perf_counter()
    if epoch_callback is None:
        est.fit(train, valid if valid is not None and len(valid) else None)
    else:
        est.fit(train, valid if valid is not None and len(valid) else None, epoch_callback=epoch_callback)
    return time.perf_counter() - t0


@dataclass
class Scoring:
    scores: np.ndarray
    result: dict[str, Any]  # metrics (floats) and details (dicts, lists), see ``evaluate``
    seconds: float


def score(est: Any, data: ClipData) -> Scoring:
    """``est``'s scores on ``data`` (labels hidden from it) and every metric of the kind it is
    evaluated as (the task's, or clustering: ``System.evaluation_kind``; unobserved tags left
    out), with the fold's tag vocabulary where the task chose one."""
    t0 = time.perf_counter()
    scores = np.asarray(est.predict_scores(data.without_labels()), dtype=np.float64)
    seconds = time.perf_counter() - t0
    result = evaluate(est.evaluation_kind(data.kind), data.y, scores, data.classes, data.mask)
    if data.vocabulary is not None:
        result["vocabulary"] = data.vocabulary.summary()
    return Scoring(scores, result, seconds)
