"""The networks of the deep family. Each maps a batch of input chunks to logits.

A model reads chunks of a cached input (log-mel, CQT or the waveform, see
``musicbench.systems.deep.inputs``); only learnable front ends run inside it. A
convolutional body and a pooled linear head follow, so the trainer needs to know nothing
about what is inside.
"""

from __future__ import annotations

import torch
from torch import nn

from musicbench.systems.deep.architectures import Architecture, NetSettings
from musicbench.systems.deep.backbone import Backbone
from musicbench.systems.deep.frontend import HarmonicFilterbank


def _block(dims: int, c_in: int, c_out: int, pool: int) -> nn.Sequential:
    conv, norm, pool_cls = ((nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1
                            else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))
    return nn.Sequential(conv(c_in, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU(inplace=True),
                         pool_cls(pool, ceil_mode=True))


def mean_max(x: torch.Tensor) -> torch.Tensor:
    """``[batch, channels, time]`` -> ``[batch, 2 * channels]``: mean and max over time."""
    return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)


class PooledHead(nn.Module):
    """Dropout -> linear on the ``[batch, 2 * channels]`` mean and max of the feature maps."""

    def __init__(self, channels: int, n_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(2 * channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))


class ChunkClassifier(Backbone):
    """(Learnable front end) -> input normalisation -> convolutional body -> mean and max
    over time (the embedding) -> pooled head.

    The input is a batch of chunks of a cached ``DeepInput``: ``[batch, bins, frames]``
    (``[batch, 1, samples]`` for waveform networks). A learnable front end (the harmonic
    filter bank) runs on the waveform in float32 even under mixed precision.
    """

    def __init__(self, frontend: nn.Module | None, norm: nn.Module, body: nn.Module, head: PooledHead,
                 collapse_freq: bool, add_channel: bool = False):
        super().__init__()
        self.frontend, self.norm, self.body, self.head = frontend, norm, body, head
        self.collapse_freq, self.add_channel = collapse_freq, add_channel

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, bins, frames]`` float32 chunks -> ``[batch, channels, time]`` maps."""
        if self.frontend is not None:
            with torch.autocast(x.device.type, enabled=False):
                x = self.frontend(x[:, 0].float())
        elif self.add_channel:  # a spectrogram as a one-channel image for 2-D convolutions
            x = x[:, None]
        x = self.body(self.norm(x))
        if self.collapse_freq:  # [b, c, f, t] -> [b, c, t]: the strongest band per channel
            x = x.amax(dim=2)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, bins, frames]`` chunks -> ``[batch, embedding_size]``: the head's input."""
        return mean_max(self.features(x))

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


def _cnn1d(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
    widths = list(s.channels) if s.channels else _widths(4 * s.width, s.n_blocks, 1, 4)
    return ChunkClassifier(None, nn.BatchNorm1d(in_bins), _stack(1, in_bins, widths, 2),
                           PooledHead(widths[-1], n_classes, s.dropout), collapse_freq=False)


def _cnn2d(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
    widths = list(s.channels) if s.channels else _widths(s.width, s.n_blocks, 1, 8)
    return ChunkClassifier(None, nn.BatchNorm2d(1), _stack(2, 1, widths, 2),
                           PooledHead(widths[-1], n_classes, s.dropout), collapse_freq=True,
                           add_channel=True)


def _harmoniccnn(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
    fe = HarmonicFilterbank(sample_rate, s.n_fft, s.hop_length, s.n_harmonics, s.n_f0)
    widths = list(s.channels) if s.channels else _widths(s.width, s.n_blocks, 1, 8)
    return ChunkClassifier(fe, nn.BatchNorm2d(s.n_harmonics), _stack(2, s.n_harmonics, widths, 2),
                           PooledHead(widths[-1], n_classes, s.dropout), collapse_freq=True)


def _samplecnn(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
    widths = list(s.channels) if s.channels else _widths(s.width, s.n_blocks, 2, 8)
    frame = nn.Sequential(nn.Conv1d(1, widths[0], 3, stride=3, bias=False),
                          nn.BatchNorm1d(widths[0]), nn.ReLU(inplace=True))
    body = nn.Sequential(frame, _stack(1, widths[0], widths, 3))
    return ChunkClassifier(None, nn.Identity(), body, PooledHead(widths[-1], n_classes, s.dropout),
                           collapse_freq=False)


CNN1D = Architecture(_cnn1d, doc="kernels span every mel (or CQT) bin and slide over time only: few "
                     "parameters and fast, but a pitch shift moves energy across its input channels")
CNN2D = Architecture(_cnn2d, doc="VGG-style 3x3 convolutions and 2x2 poolings over the spectrogram "
                     "(a short-chunk CNN); local in frequency, so more robust to pitch shift")
SAMPLECNN = Architecture(_samplecnn, reads_wave=True,
                         doc="SampleCNN on raw samples: a stride-3 frame-level convolution, then "
                             "n_blocks of size-3 convolution and pooling by 3")
HARMONICCNN = Architecture(_harmoniccnn, reads_wave=True,
                           doc="a learnable harmonic filter bank, harmonics as input channels of "
                               "the same 2-D body as cnn2d")
