"""The networks of the deep family. Each maps a batch of waveform chunks to logits.

A model is a front end (fixed or learnable, run in float32 even under mixed precision)
followed by a convolutional body and a pooled linear head, so the trainer needs to know
nothing about what is inside.
"""

from __future__ import annotations

import torch
from torch import nn

from musicbench.systems.deep.frontend import CQT, HarmonicFilterbank, LogMel

MODELS = ("cnn1d", "cnn2d", "samplecnn", "harmoniccnn")
SPECTRAL_FRONTENDS = ("logmel", "cqt")  # the torch front ends cnn1d and cnn2d can use


def _block(dims: int, c_in: int, c_out: int, pool: int) -> nn.Sequential:
    conv, norm, pool_cls = ((nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1
                            else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))
    return nn.Sequential(conv(c_in, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU(inplace=True),
                         pool_cls(pool, ceil_mode=True))


class PooledHead(nn.Module):
    """Mean and max over time of ``[batch, channels, time]`` -> dropout -> linear."""

    def __init__(self, channels: int, n_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(2 * channels, n_classes)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """``[batch, channels, time]`` -> ``[batch, 2 * channels]``: the penultimate layer."""
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(self.pool(x)))


class ChunkClassifier(nn.Module):
    """Front end -> input normalisation -> convolutional body -> pooled head."""

    def __init__(self, frontend: nn.Module | None, norm: nn.Module, body: nn.Module, head: PooledHead,
                 collapse_freq: bool):
        super().__init__()
        self.frontend, self.norm, self.body, self.head = frontend, norm, body, head
        self.collapse_freq = collapse_freq

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` float32 waveform chunks -> ``[batch, channels, time]`` maps."""
        with torch.autocast(wave.device.type, enabled=False):
            x = self.frontend(wave.float()) if self.frontend is not None else wave[:, None, :]
        x = self.body(self.norm(x))
        if self.collapse_freq:  # [b, c, f, t] -> [b, c, t]: the strongest band per channel
            x = x.amax(dim=2)
        return x

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` float32 waveform chunks -> ``[batch, n_classes]`` logits."""
        return self.head(self.features(wave))

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` chunks -> ``[batch, embedding_size]``: the head's input."""
        return self.head.pool(self.features(wave))

    @property
    def embedding_size(self) -> int:
        return self.head.linear.in_features


def _widths(width: int, n_blocks: int, every: int, cap: int) -> list[int]:
    return [min(width * 2 ** (i // every), width * cap) for i in range(n_blocks)]


def _stack(dims: int, c_in: int, widths: list[int], pool: int) -> nn.Sequential:
    layers, c = [], c_in
    for w in widths:
        layers.append(_block(dims, c, w, pool))
        c = w
    return nn.Sequential(*layers)


def build_model(name: str, n_classes: int, sample_rate: int, *, frontend: str = "logmel",
                n_fft: int = 1024, hop_length: int = 512, n_mels: int = 64, n_bins: int = 84,
                fmin: float = 32.70, n_harmonics: int = 6, n_f0: int = 48, width: int = 16,
                n_blocks: int = 4, dropout: float = 0.3) -> ChunkClassifier:
    """One of ``MODELS`` for ``n_classes`` outputs.

    - ``cnn1d``: kernels span every mel (or CQT) bin and slide over time only: few
      parameters and fast, but a pitch shift moves energy across its input channels.
    - ``cnn2d``: VGG-style 3x3 convolutions and 2x2 poolings over the spectrogram (a
      short-chunk CNN); local in frequency, so more robust to pitch shift.
    - ``samplecnn``: SampleCNN on raw samples: a stride-3 frame-level convolution, then
      ``n_blocks`` of size-3 convolution and pooling by 3.
    - ``harmoniccnn``: a learnable harmonic filter bank, harmonics as input channels of
      the same 2-D body as ``cnn2d``.
    """
    if frontend not in SPECTRAL_FRONTENDS:
        raise ValueError(f"frontend={frontend!r}: must be one of {SPECTRAL_FRONTENDS}")

    def spectral() -> nn.Module:
        if frontend == "cqt":
            return CQT(sample_rate, hop_length, n_bins, fmin)
        return LogMel(sample_rate, n_fft, hop_length, n_mels)

    if name == "cnn1d":
        fe = spectral()
        widths = _widths(4 * width, n_blocks, 1, 4)
        return ChunkClassifier(fe, nn.BatchNorm1d(fe.n_bins), _stack(1, fe.n_bins, widths, 2),
                               PooledHead(widths[-1], n_classes, dropout), collapse_freq=False)
    if name == "cnn2d":
        fe = spectral()
        widths = _widths(width, n_blocks, 1, 8)
        return ChunkClassifier(_Unsqueeze(fe), nn.BatchNorm2d(1), _stack(2, 1, widths, 2),
                               PooledHead(widths[-1], n_classes, dropout), collapse_freq=True)
    if name == "harmoniccnn":
        fe = HarmonicFilterbank(sample_rate, n_fft, hop_length, n_harmonics, n_f0)
        widths = _widths(width, n_blocks, 1, 8)
        return ChunkClassifier(fe, nn.BatchNorm2d(n_harmonics), _stack(2, n_harmonics, widths, 2),
                               PooledHead(widths[-1], n_classes, dropout), collapse_freq=True)
    if name == "samplecnn":
        frame = nn.Sequential(nn.Conv1d(1, width, 3, stride=3, bias=False), nn.BatchNorm1d(width),
                              nn.ReLU(inplace=True))
        widths = _widths(width, n_blocks, 2, 8)
        body = nn.Sequential(frame, _stack(1, width, widths, 3))
        return ChunkClassifier(None, nn.Identity(), body, PooledHead(widths[-1], n_classes, dropout),
                               collapse_freq=False)
    raise ValueError(f"model={name!r}: must be one of {MODELS}")


class _Unsqueeze(nn.Module):
    """A spectral front end whose output gains a channel axis (for 2-D convolutions)."""

    def __init__(self, frontend: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.hop_length, self.n_bins = frontend.hop_length, frontend.n_bins

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.frontend(wave)[:, None]
