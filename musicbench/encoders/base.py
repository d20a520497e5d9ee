"""The encoder contract: a frozen audio -> embedding model, in the shape of the HEAR 2021 API.

An encoder takes a batch of mono audio at its own ``sample_rate`` as a float tensor
``[n_clips, n_samples]`` and returns

- ``timestamps(audio)``: ``(embeddings [n_clips, n_frames, timestamp_embedding_size],
  times [n_clips, n_frames])``, float32, the times in seconds at the centre of each frame,
  evenly spaced ``hop_seconds`` apart and never after the clip's end;
- ``scene(audio)``: ``[n_clips, scene_embedding_size]``, float32, one vector per clip (by
  default the mean of its timestamp embeddings).

Both refuse anything else (one clip without its batch axis, an empty clip, integer samples,
a ``sample_rate`` the caller states and the encoder does not take) with a ``ConfigError``
that names the encoder, the expected shape and the rate, instead of failing deep inside a
network. Subclasses implement ``_timestamps`` (and ``_scene`` where a clip vector is not
the mean) on audio already checked, as float32 on the encoder's device.

Weights are frozen (``eval()``, no gradients). ``card()`` says where the weights came from,
under which licence, and their digest, so results that used an encoder can record them.
``output_version`` is part of the embedding cache key: a change that alters what the same
weights and parameters give bumps it, so stale cached embeddings are never reused.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from musicbench.errors import ConfigError


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


def window_count(n_samples: int, window: int, hop: int) -> int:
    """How many windows of ``window`` samples, ``hop`` apart from the clip's start, have their
    centre inside a clip of ``n_samples`` (at least one).

    The last one may run past the clip's end and is padded: with ``hop <= window / 2`` that
    covers the tail, while every frame stays on the regular grid (an extra window aligned to
    the clip's end would not be) and no timestamp falls after the clip (HEAR refuses those).
    """
    return 1 + max(0, (2 * n_samples - window) // (2 * hop))


def window_times(count: int, window: int, hop: int, n_samples: int, sample_rate: int) -> torch.Tensor:
    """``[count]`` centres in seconds of ``count`` windows ``hop`` samples apart; a single
    window stands for the audio it holds, so it is centred on ``min(window, n_samples)``."""
    if count == 1:
        return torch.tensor([min(window, n_samples) / 2 / sample_rate], dtype=torch.float32)
    starts = torch.arange(count, dtype=torch.float64) * hop
    return ((starts + window / 2) / sample_rate).float()


class Encoder(nn.Module):
    """Base class of every encoder; subclasses set the sizes and implement ``_timestamps``."""

    name: str = "encoder"
    sample_rate: int
    scene_embedding_size: int
    timestamp_embedding_size: int
    #: the exact spacing of the timestamps in seconds; None where the encoder cannot declare
    #: it (a wrapped HEAR module says only what it returns)
    hop_seconds: float | None = None
    output_version: ClassVar[int] = 1

    @torch.no_grad()
    def timestamps(self, audio: torch.Tensor,
                   sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame embeddings and their centre times in seconds; ``sample_rate``, where the
        caller knows it, is checked against the encoder's."""
        emb, times = self._timestamps(self.check_audio(audio, sample_rate))
        return emb.float(), times.float()

    @torch.no_grad()
    def scene(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """One embedding per clip; ``sample_rate`` as for ``timestamps``."""
        return self._scene(self.check_audio(audio, sample_rate)).float()

    def _timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _scene(self, audio: torch.Tensor) -> torch.Tensor:
        return self._timestamps(audio)[0].mean(dim=1)

    def check_audio(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``audio`` as float32 on the encoder's device, or a ConfigError saying what it takes."""
        takes = f"encoder {self.name} takes float audio [n_clips, n_samples] at {self.sample_rate} Hz"
        if not isinstance(audio, torch.Tensor):
            raise ConfigError(f"{takes} as a torch tensor, got {type(audio).__name__}")
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ConfigError(f"{takes}, got {sample_rate} Hz: resample it first "
                              "(musicbench.encoders.extractor.resample)")
        if audio.ndim != 2:
            hint = " (one clip: audio[None])" if audio.ndim == 1 else ""
            raise ConfigError(f"{takes}, got shape {list(audio.shape)}{hint}")
        if 0 in audio.shape:
            raise ConfigError(f"{takes}, got an empty batch of shape {list(audio.shape)}")
        if not audio.is_floating_point():
            raise ConfigError(f"{takes}, got {audio.dtype} samples: scale them to [-1, 1] floats")
        return audio.to(self.device, torch.float32)

    def card(self) -> EncoderCard:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
