"""Any HEAR 2021 module as an encoder.

A HEAR module (https://hearbenchmark.com/hear-api.html) defines ``load_model(model_file_path)``,
``get_scene_embeddings(audio, model)`` and ``get_timestamp_embeddings(audio, model)``; the
model it returns carries ``sample_rate``, ``scene_embedding_size`` and
``timestamp_embedding_size``. HEAR timestamps are in milliseconds; ours are in seconds, and
timestamps that cannot be milliseconds for the clip they came from are refused.
A preset plugs one in::

    family = "hear"
    licence = "Apache-2.0"
    [params]
    module = "hearbaseline.wav2vec2"
    model_file = "/models/wav2vec2.pt"
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from musicbench.encoders.base import Encoder, EncoderCard, file_digest
from musicbench.errors import ConfigError

HEAR_FUNCTIONS = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
HEAR_ATTRIBUTES = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")


def import_hear_module(module: str) -> ModuleType:
    """Import a HEAR module and check it defines the three API functions."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"HEAR module {module!r} cannot be imported ({exc}); install the "
                          "package that provides it") from exc
    missing = [f for f in HEAR_FUNCTIONS if not callable(getattr(mod, f, None))]
    if missing:
        raise ConfigError(f"HEAR module {module!r} does not define {', '.join(missing)}; a HEAR "
                          "2021 module needs load_model(model_file_path), "
                          "get_scene_embeddings(audio, model) and get_timestamp_embeddings(audio, model)")
    return mod


def module_version(mod: ModuleType) -> str:
    """``dist==version`` of the distribution that installed ``mod``'s top-level package
    (``hearbaseline==2021.1.1`` for ``hearbaseline.vqt``), else that package's
    ``__version__``: a card must say which code computed the embeddings."""
    top = mod.__name__.partition(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        return f"{dist}=={importlib.metadata.version(dist)}"
    version = getattr(mod, "__version__", None) or getattr(sys.modules[top], "__version__", None)
    return f"{top} {version}" if version else f"{top} (no version: not installed from a distribution)"


def check_milliseconds(ms: torch.Tensor, duration_ms: float, module: str) -> None:
    """Refuse timestamps that cannot be milliseconds: after the clip's end (samples, microseconds),
    or several frames all within its first 1% (seconds passed through, which HEAR's kit
    would silently match against no event)."""
    if ms.numel() == 0:
        return
    last = float(ms.max())
    if last > duration_ms + 1 or (ms.shape[-1] > 1 and last < duration_ms / 100):
        raise ConfigError(f"HEAR module {module!r}: timestamps up to {last:g} for a clip of "
                          f"{duration_ms:g} ms; HEAR timestamps are frame centres in milliseconds")


def _state_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class HearEncoder(Encoder):
    """Wraps a HEAR 2021 module; the model it loads is a submodule when it is an ``nn.Module``.

    ``model_file`` goes to ``load_model`` as it is (a weights file, or whatever the module
    takes there, such as a ``musicbench.hear`` encoder name). ``licence`` is the preset's
    (``build_encoder`` passes it: a module rarely declares one); ``source`` defaults to the
    module, the version of the distribution that installed it and the model file.
    """

    def __init__(self, module: str, model_file: str | None = None, device: str = "cpu",
                 licence: str | None = None, source: str | None = None):
        super().__init__()
        self.module_name = module
        self.model_file = model_file
        self._mod = import_hear_module(module)
        model = self._mod.load_model(model_file) if model_file else self._mod.load_model()
        missing = [a for a in HEAR_ATTRIBUTES if not hasattr(model, a)]
        if missing:
            raise ConfigError(f"HEAR module {module!r}: the model from load_model() lacks "
                              f"{', '.join(missing)} (required by the HEAR 2021 API)")
        if isinstance(model, nn.Module):
            model = model.to(device).eval()
            self.model = model  # registered, so .to() and parameters() reach it
        else:
            self._model = model
        self._device = torch.device(device)
        self.sample_rate = int(model.sample_rate)
        self.scene_embedding_size = int(model.scene_embedding_size)
        self.timestamp_embedding_size = int(model.timestamp_embedding_size)
        self.licence = licence or getattr(self._mod, "__license__", None) or "unknown (see the module)"
        default_source = f"HEAR module {module}, {module_version(self._mod)}"
        if model_file:
            default_source += f", model {model_file}"
        self.source = source or default_source
        self.name = module

    @property
    def hear_model(self) -> Any:
        return self.model if "model" in self._modules else self._model

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return self._device

    def _timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb, ms = self._mod.get_timestamp_embeddings(audio, self.hear_model)
        check_milliseconds(ms, 1000 * audio.shape[1] / self.sample_rate, self.module_name)
        return emb, ms.to(torch.float64) / 1000.0

    def _scene(self, audio: torch.Tensor) -> torch.Tensor:
        return self._mod.get_scene_embeddings(audio, self.hear_model)

    def card(self) -> EncoderCard:
        model = self.hear_model
        if self.model_file and Path(self.model_file).is_file():
            digest = file_digest(self.model_file)
        elif isinstance(model, nn.Module) and model.state_dict():
            digest = _state_digest(model)
        else:
            digest = file_digest(self._mod.__file__)
        return EncoderCard(self.name, self.licence, self.source, digest, self.sample_rate,
                           self.scene_embedding_size, self.timestamp_embedding_size)
