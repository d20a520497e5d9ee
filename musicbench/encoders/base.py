"""The encoder contract: a frozen audio -> embedding model, in the shape of the HEAR 2021 API.

An encoder takes a batch of mono audio at its own ``sample_rate`` as a float32 tensor
``[n_clips, n_samples]`` on its device and returns

- ``timestamps(audio)``: ``(embeddings [n_clips, n_frames, timestamp_embedding_size],
  times [n_clips, n_frames])``, the times in seconds at the centre of each frame;
- ``scene(audio)``: ``[n_clips, scene_embedding_size]``, one vector per clip (by default
  the mean of its timestamp embeddings).

Weights are frozen (``eval()``, no gradients). ``card()`` says where the weights came from,
under which licence, and their digest, so results that used an encoder can record them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderCard:
    """Provenance of an encoder's weights, recorded with every result that used them."""

    name: str
    licence: str
    source: str  # where the weights come from (a package and the file inside it, a checkpoint path)
    weights_digest: str  # sha256 of the weight file(s), first 16 hex digits
    sample_rate: int
    scene_embedding_size: int
    timestamp_embedding_size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_digest(*paths: str | Path) -> str:
    """sha256 over the bytes of one or more weight files, 16 hex digits."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class Encoder(nn.Module):
    """Base class of every encoder; subclasses set the sizes and implement ``timestamps``."""

    name: str = "encoder"
    sample_rate: int
    scene_embedding_size: int
    timestamp_embedding_size: int

    def timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def scene(self, audio: torch.Tensor) -> torch.Tensor:
        emb, _ = self.timestamps(audio)
        return emb.mean(dim=1)

    def card(self) -> EncoderCard:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
