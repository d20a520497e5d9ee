"""Checkpoints of fitted deep systems: a state dict and a JSON description, loadable with
``torch.load(weights_only=True)`` (tensors and strings only, nothing to unpickle).

The description names the network's builder and its arguments (``network``, a
``NetSpec``'s or another network's), the encoder family that reads the checkpoint, the
parameters it was trained with and what it was trained on; loading imports only the
builder."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import torch

from musicbench.errors import ConfigError
from musicbench.registry import resolve
from musicbench.runtime import atomic_write
from musicbench.systems.deep.inputs import DeepInput
from musicbench.systems.deep.netspec import legacy_network

FORMAT = 3
READABLE = (2, 3)  # format 2 stored the family and its parameters instead of the network


def save_checkpoint(system: Any, path: str | Path) -> Path:
    """Write a fitted ``system``'s network and what rebuilds it (builder and arguments,
    parameters, classes, sample rate, kind, the task it was trained on) to ``path``,
    atomically. Any system with a ``Trainer`` (``trainer_``), an ``input_``, a
    ``network_checkpoint(n_outputs, input)`` and an ``encoder_family`` can be saved."""
    if not hasattr(system, "trainer_"):
        raise ConfigError("only a fitted deep system can be saved: call fit first")
    trainer = system.trainer_
    params = {k: v for k, v in system.get_params().items() if k != "device"}
    meta = {"format": FORMAT, "encoder": system.encoder_family, "params": params,
            "network": system.network_checkpoint(len(trainer.classes), system.input_),
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
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist: save one with DeepSystem.save "
                          "(see docs/probes.md)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ConfigError(f"checkpoint {path} is not a musicbench deep-system checkpoint: {exc}") from None
    if meta.get("format") not in READABLE:
        raise ConfigError(f"checkpoint {path}: format {meta.get('format')!r}, expected one of {READABLE}")
    network = meta.get("network") or legacy_network(meta, str(path))
    net = resolve(network["build"])(**network["args"])
    net.load_state_dict(blob["state_dict"])
    return net.eval(), DeepInput(**meta["input"]), meta


def encoder_family(meta: dict[str, Any]) -> str:
    """The encoder family that reads a checkpoint described by ``meta``: ``metric`` for a
    metric system's, ``ssl`` for a ``musicbench pretrain`` backbone, ``deep`` for a fitted
    deep system's (so a checkpoint alone, without a preset, becomes the right encoder)."""
    if "encoder" in meta:
        return meta["encoder"]
    if meta.get("family") == "metric":
        return "metric"
    return "ssl" if meta.get("kind") == "self-supervised" else "deep"
