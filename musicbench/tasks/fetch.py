"""``musicbench data fetch``: mirdata's download, with an actionable error when offline."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

from musicbench.errors import DataError
from musicbench.tasks.loader import Task


def fetch(task: Task) -> None:
    if task.spec.source == "synthetic":
        print(f"{task.ref} is generated locally at {task.data_home}")  # generated on first use
        return
    ds = task.open_dataset(require_index=False)
    try:
        ds.download()  # index first, then the archives, with mirdata's progress bars
    except (OSError, urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise DataError(
            f"cannot download {task.ref} ({exc}); this machine looks offline. Download the "
            f"dataset by hand into {ds.data_home} and its index file "
            f"{ds._index_data.filename} into a folder passed as --index-dir."
        ) from None
    if task.index_dir:
        Path(task.index_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(ds._index_data.get_path(), Path(task.index_dir) / ds._index_data.filename)
