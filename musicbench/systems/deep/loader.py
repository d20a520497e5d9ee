"""Batches of chunks assembled by ``torch.utils.data``, in worker processes if asked.

The trainer draws an epoch's plan (which clips, at which positions) in this process
with its seeded generator; the loader only cuts the planned chunks from the clips'
arrays (``FeatureBank.read``), so the batches, and every result, are the same whatever
the number of workers. ``MUSICBENCH_LOADER_WORKERS`` (default 0: cut in this process)
and ``MUSICBENCH_LOADER_PREFETCH`` (batches read ahead per worker, default 2) are
execution settings, not parameters: they change speed, never results or cell keys.
Batches are pinned in host memory when they go to a CUDA device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from musicbench.errors import ConfigError
from musicbench.systems.deep.inputs import FeatureBank

WORKERS_ENV = "MUSICBENCH_LOADER_WORKERS"
PREFETCH_ENV = "MUSICBENCH_LOADER_PREFETCH"

Plan = list[tuple[np.ndarray, np.ndarray]]  # (clip rows, start frames) per batch


def _setting(name: str, default: int, low: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = low - 1
    if value < low:
        raise ConfigError(f"{name}={raw!r}: must be an integer >= {low}")
    return value


class PlannedChunks(Dataset):
    """Item ``b``: the chunks of batch ``b`` of ``plan``, ``[rows, bins, length]`` on the host."""

    def __init__(self, bank: FeatureBank, plan: Plan, length: int):
        self.bank, self.plan, self.length = bank, plan, length

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, b: int) -> torch.Tensor:
        rows, starts = self.plan[b]
        return self.bank.read(rows, starts, self.length)


def loader_settings() -> tuple[int, int]:
    """(workers, prefetch) from the environment; a clear error for a bad value."""
    return _setting(WORKERS_ENV, 0, 0), _setting(PREFETCH_ENV, 2, 1)


def planned_batches(bank: FeatureBank, plan: Plan, length: int,
                    settings: tuple[int, int] = (0, 2)) -> Iterator[torch.Tensor]:
    """The batches of ``plan`` in order, on the bank's device (``settings``: workers, prefetch)."""
    workers, prefetch = settings
    loader = DataLoader(
        PlannedChunks(bank, plan, length), batch_size=None, num_workers=workers,
        prefetch_factor=prefetch if workers else None,
        pin_memory=bank.device.type == "cuda", persistent_workers=False,
        generator=torch.Generator(),  # its seed draw must not advance torch's global generator
    )
    for chunks in loader:
        yield chunks.to(bank.device, non_blocking=True)


__all__ = ["PREFETCH_ENV", "WORKERS_ENV", "PlannedChunks", "loader_settings", "planned_batches"]
