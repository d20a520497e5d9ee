"""What builds a deep network, apart from the system that trained it.

A ``NetSpec`` names the architecture (one of ``MODELS``), the input it reads (a
``DeepInput``), its number of outputs and its ``NetSettings`` (widths, blocks, dropout).
``DeepSystem``, ``MetricSystem`` (for its backbone) and contrastive pretraining build their
networks from one, and checkpoints store it: a checkpoint names a builder
(``module:function``) and its JSON arguments, so loading one needs neither the system
classes nor the family table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from musicbench.errors import ConfigError
from musicbench.systems.deep.architectures import NetSettings, build_model
from musicbench.systems.deep.inputs import DeepInput

BUILD = "musicbench.systems.deep.netspec:build_net"  # what a checkpoint of a NetSpec names


@dataclass(frozen=True)
class NetSpec:
    model: str
    input: DeepInput
    n_outputs: int
    settings: NetSettings = field(default_factory=NetSettings)

    @property
    def in_bins(self) -> int:
        """Input bins: mel bands, CQT bins, or 1 for the waveform."""
        return {"logmel": self.input.n_mels, "cqt": self.input.n_bins, "wave": 1}[self.input.kind]

    def build(self) -> nn.Module:
        """A freshly initialised network (seed torch first for reproducible weights)."""
        return build_model(self.model, self.n_outputs, self.in_bins, self.input.sample_rate,
                           **dataclasses.asdict(self.settings))

    def to_dict(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self.settings)
        if settings["channels"] is not None:
            settings["channels"] = list(settings["channels"])
        return {"model": self.model, "input": dataclasses.asdict(self.input), "n_outputs": self.n_outputs,
                "settings": settings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetSpec:
        settings = dict(data.get("settings", {}))
        if settings.get("channels") is not None:
            settings["channels"] = tuple(settings["channels"])
        return cls(data["model"], DeepInput(**data["input"]), int(data["n_outputs"]), NetSettings(**settings))

    def checkpoint(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild this network."""
        return {"build": BUILD, "args": self.to_dict()}


def build_net(**spec: Any) -> nn.Module:
    """The network of a checkpoint's ``NetSpec`` (its ``to_dict``)."""
    return NetSpec.from_dict(spec).build()


SETTINGS = tuple(f.name for f in dataclasses.fields(NetSettings))


def legacy_network(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``network`` entry of a checkpoint written before checkpoints stored one (format
    2): a deep system's (or pretrained backbone's) parameters hold every ``NetSettings``
    field, so its spec follows from them; other families' need their presets and are
    refused."""
    if meta.get("family", "deep") != "deep":
        raise ConfigError(f"checkpoint {where}: a {meta['family']} checkpoint of format 2 cannot be read "
                          "without its presets; save it again (or let it be trained again on first use)")
    params = meta["params"]
    settings = {k: params[k] for k in SETTINGS if k in params}
    if settings.get("channels") is not None:
        settings["channels"] = tuple(settings["channels"])
    spec = NetSpec(params["model"], DeepInput(**meta["input"]), len(meta["classes"]) or 1,
                   NetSettings(**settings))
    return spec.checkpoint()
