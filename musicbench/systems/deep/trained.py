"""Checkpoints trained on first use: a deep (or metric) system preset fitted on every clip
of a task, cached by content, for the encoders that name a system and a task instead of
a checkpoint file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from musicbench.errors import ConfigError
from musicbench.runtime import cache_root
from musicbench.systems.deep.checkpoint import FORMAT


def trained_checkpoint(system: str, task: str, seed: int = 0, **overrides: Any) -> Path:
    """The checkpoint of preset ``system`` fitted on every clip of ``task`` (no validation
    part: the last epoch is kept), trained on first use into the cache and reused after.
    Training runs on one CPU thread, where it is bitwise deterministic (threaded
    reductions differ in the last bits), so every machine builds the same weights and
    the same cache keys downstream."""
    from musicbench.protocol.experiment import fit
    from musicbench.systems import build_system, get_preset
    from musicbench.tasks import get_task

    spec = {"system": system, "preset": get_preset(system)["params"], "task": task, "seed": seed,
            "overrides": overrides, "format": FORMAT}
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "checkpoints" / f"{system}-{key}.pt"
    if not path.is_file():
        est = build_system(system, seed=seed, **overrides)
        if not hasattr(est, "save"):
            raise ConfigError(f"system {system} is not a deep system; it has no checkpoint to save")
        clipset = get_task(task).clips()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fit(est, clipset.part([c.track_id for c in clipset.clips]), None, seed)
        finally:
            torch.set_num_threads(threads)
        est.save(path)
    return path
