"""Checkpoints of fitted deep systems: a state dict and a JSON description, loadable with
``torch.load(weights_only=True)`` (tensors and strings only, nothing to unpickle)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from musicbench.errors import ConfigError
from musicbench.runtime import atomic_write, cache_root
from musicbench.systems.deep.inputs import DeepInput

if TYPE_CHECKING:
    from musicbench.systems.deep.system import DeepSystem
    from musicbench.systems.metric import MetricSystem

FORMAT = 2


def family_name(system: Any) -> str:
    """The registered family of ``system``'s class (what rebuilds its network on loading)."""
    from musicbench.systems import FAMILIES

    path = f"{type(system).__module__}:{type(system).__qualname__}"
    return next(name for name in FAMILIES if FAMILIES.source(name) == path)


def save_checkpoint(system: DeepSystem | MetricSystem, path: str | Path) -> Path:
    """Write a fitted ``system``'s network and what rebuilds it (family, parameters,
    classes, sample rate, kind, the task it was trained on) to ``path``, atomically.
    Any family whose systems have a ``Trainer`` (``trainer_``), an ``input_`` and a
    ``build_network(n_classes, input)`` can be saved."""
    if not hasattr(system, "trainer_"):
        raise ConfigError("only a fitted deep system can be saved: call fit first")
    trainer = system.trainer_
    params = {k: v for k, v in system.get_params().items() if k != "device"}
    meta = {"format": FORMAT, "family": family_name(system), "params": params,
            "classes": list(trainer.classes), "kind": trainer.kind,
            "input": dataclasses.asdict(system.input_), "task": system.task_}
    return write_checkpoint(path, trainer.model, meta)


def write_checkpoint(path: str | Path, net: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """``net``'s weights (on CPU) and ``meta`` (JSON) to ``path``, atomically."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"state_dict": state, "meta": json.dumps(meta, sort_keys=True)}, buf)
    path = Path(path)
    atomic_write(path, buf.getvalue())
    return path


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, DeepInput, dict[str, Any]]:
    """The network (eval mode, on CPU), the input it reads and the description of a saved
    checkpoint (a fitted system's, or a pretrained backbone's: no classes, an untrained
    one-output head)."""
    from musicbench.systems import family_class

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist: save one with DeepSystem.save "
                          "(see docs/probes.md)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ConfigError(f"checkpoint {path} is not a musicbench deep-system checkpoint: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"checkpoint {path}: format {meta.get('format')!r}, expected {FORMAT}")
    spec = DeepInput(**meta["input"])
    system = family_class(meta.get("family", "deep"))(**meta["params"])
    net = system.build_network(len(meta["classes"]) or 1, spec)
    net.load_state_dict(blob["state_dict"])
    return net.eval(), spec, meta


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
