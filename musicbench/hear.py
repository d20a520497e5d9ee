"""Every musicbench encoder as a HEAR 2021 module (https://hearbenchmark.com/hear-api.html).

HEAR's tools take a module and a model file; this module is that module for all of ours::

    hear-validator musicbench.hear --model aisfx                 # a registered encoder
    hear-validator musicbench.hear --model runs/cnn1d.pt         # a saved checkpoint
    python -m heareval.embeddings.runner musicbench.hear --model-options '{"encoder": "crepe-tiny"}'

``load_model`` takes a registered encoder name, ``""`` (``DEFAULT_ENCODER``), or a
checkpoint that a deep or metric system saved or that ``musicbench pretrain`` wrote, and
returns the encoder itself: a frozen ``nn.Module`` carrying ``sample_rate``,
``scene_embedding_size`` and ``timestamp_embedding_size``. Times are milliseconds at this
boundary and seconds inside musicbench. ``bench/hear_validator.sh`` runs HEAR's own
validator (which needs TensorFlow) on every registered encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from musicbench.encoders import Encoder, build_encoder, build_family_encoder, encoder_names
from musicbench.errors import ConfigError

#: what ``load_model("")`` (and ``hear-validator musicbench.hear`` without ``--model``) loads
DEFAULT_ENCODER = "musicnn-mtt"


def load_model(model_file_path: str = "", encoder: str | None = None, **params: Any) -> Encoder:
    """The encoder ``model_file_path`` names: a registered encoder (``aisfx``), a saved
    checkpoint (``runs/cnn1d.pt``), or ``""`` for ``DEFAULT_ENCODER``; on the CPU (HEAR's
    tools move it).

    ``encoder`` names a registered one where a caller can pass options only (heareval's
    ``--model`` must be an existing file); ``params`` override the encoder's parameters.
    """
    if model_file_path and encoder:
        raise ConfigError(f"musicbench.hear.load_model: give a model file ({model_file_path!r}) "
                          f"or an encoder ({encoder!r}), not both")
    target = str(model_file_path or encoder or DEFAULT_ENCODER)
    names = encoder_names()
    if target in names:
        return build_encoder(target, **params)
    if not Path(target).is_file():
        raise ConfigError(f"musicbench.hear.load_model: {target!r} is neither a registered encoder "
                          f"({', '.join(names)}) nor a checkpoint file")
    from musicbench.systems.deep.encoder import checkpoint_encoder_family

    return build_family_encoder(checkpoint_encoder_family(target), {"checkpoint": target, **params},
                                name=target)


def _encoder(model: Any) -> Encoder:
    if not isinstance(model, Encoder):
        raise ConfigError(f"musicbench.hear needs a model from musicbench.hear.load_model, "
                          f"got {type(model).__name__}")
    return model


def get_timestamp_embeddings(audio: torch.Tensor, model: Encoder) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n_sounds, n_frames, timestamp_embedding_size]`` embeddings and their frame centres
    ``[n_sounds, n_frames]`` in milliseconds, evenly spaced, for ``audio [n_sounds, n_samples]``
    at ``model.sample_rate``."""
    emb, seconds = _encoder(model).timestamps(audio)
    return emb, seconds * 1000.0


def get_scene_embeddings(audio: torch.Tensor, model: Encoder) -> torch.Tensor:
    """``[n_sounds, scene_embedding_size]``: one embedding per sound."""
    return _encoder(model).scene(audio)
