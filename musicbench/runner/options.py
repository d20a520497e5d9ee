"""How a run is asked to run: where results go, data, tracking, device, executor.

Kept apart from ``runner.execute`` so that checking whether a run has anything to do
(``runner.memo``) imports none of what running cells needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunOptions:
    out: Path
    data_home: str | None = None
    index_dir: str | None = None
    allow_partial: bool = False
    tracking_uri: str | None = None
    track: bool = True
    device: str = "cpu"
    quiet: bool = False
    on_bad_track: str | None = None  # None: the suite's, then each task's setting
    verify: bool = False  # md5 of every audio file against the index before the run
    retry_failed: bool = False  # run only cells whose latest attempt failed
    executor: str = "serial"
    jobs: int | None = None  # workers of a parallel executor, and extraction processes
    scheduler: str | None = None  # a Dask scheduler's address
