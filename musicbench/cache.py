"""The on-disk cache root shared by generated data and feature caches."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MUSICBENCH_CACHE"


def cache_root() -> Path:
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "musicbench")
    root.mkdir(parents=True, exist_ok=True)
    return root
