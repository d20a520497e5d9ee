"""The music-tagging architectures of Won et al. (2020) at their published sizes.

M. Won, A. Ferraro, D. Bogdanov, X. Serra, "Evaluation of CNN-based automatic music
tagging models", SMC 2020, and its public code (``minzwon/sota-music-tagging-models``,
``training/model.py`` and ``training/modules.py``). Layer for layer these follow that
code; the deviations are:

- heads return logits (the trainer applies softmax or sigmoid), and the last pooling is
  a global max over what is left of frequency and time, which equals the published
  flatten/squeeze at the published input lengths and lets other lengths run;
- the mel front end is the project's cached ``LogMel`` (librosa's Slaney filters and
  centred constant padding), where the published code uses torchaudio's HTK filters and
  reflect padding; the input batch norm absorbs the difference in scale;
- HarmonicCNN's STFT has 512 points (257 bins, as the published 513) and constant padding.

Each network reads ``[batch, bins, frames]`` log-mel chunks or ``[batch, 1, samples]``
waveform chunks and returns ``[batch, n_classes]`` logits; like every network of the family
it is a ``Backbone``, whose ``embed`` (the head's input) pretraining, freezing and the
``deep`` encoders use.
"""

from __future__ import annotations

import torch
from torch import nn

from musicbench.systems.deep.architectures import Architecture, NetSettings
from musicbench.systems.deep.backbone import Backbone
from musicbench.systems.deep.frontend import HarmonicFilterbank


class ConvBlock(nn.Sequential):
    """Convolution (with bias) -> batch norm -> ReLU -> max pooling, in 1-D or 2-D."""

    def __init__(self, dims: int, c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
                 pool: int | tuple[int, int] = 2):
        conv, norm, mp = ((nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1
                          else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))
        super().__init__(conv(c_in, c_out, kernel, stride=stride, padding=kernel // 2), norm(c_out),
                         nn.ReLU(inplace=True), mp(pool) if pool != 1 else nn.Identity())


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a residual path (projected when the shape changes), then
    ReLU and optional max pooling: ``Res_2d`` (stride 2) and ``Res_2d_mp`` (pooling)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, pool: int | tuple[int, int] = 1):
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn_1 = nn.BatchNorm2d(c_out)
        self.conv_2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bn_2 = nn.BatchNorm2d(c_out)
        self.project = (nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                                      nn.BatchNorm2d(c_out))
                        if stride != 1 or c_in != c_out else nn.Identity())
        self.pool = nn.MaxPool2d(pool) if pool != 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn_2(self.conv_2(torch.relu(self.bn_1(self.conv_1(x)))))
        return self.pool(torch.relu(out + self.project(x)))


def global_max(x: torch.Tensor) -> torch.Tensor:
    """``[batch, channels, ...]`` -> ``[batch, channels]``: the maximum over what is left."""
    return x.flatten(2).amax(dim=2)


class DenseHead(nn.Module):
    """On the pooled features: (linear -> batch norm -> ReLU) -> dropout -> linear."""

    def __init__(self, channels: int, n_classes: int, dropout: float, hidden: int | None):
        super().__init__()
        self.hidden = (nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
                       if hidden else nn.Identity())
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden or channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.hidden(x)))


def at_least(x: torch.Tensor, length: int) -> torch.Tensor:
    """``x`` zero-padded on the right along its last axis to ``length``, where it is shorter:
    chunks shorter than the published input still pass every pooling."""
    return nn.functional.pad(x, (0, length - x.shape[-1])) if x.shape[-1] < length else x


class SpectrogramNet(Backbone):
    """Batch norm of a one-channel log-mel image, a convolutional body, a dense head.
    ``min_frames`` is the product of the body's poolings over time."""

    def __init__(self, body: nn.Module, head: nn.Module, min_frames: int):
        super().__init__()
        self.spec_bn, self.body, self.head = nn.BatchNorm2d(1), body, head
        self.min_frames = min_frames

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return global_max(self.body(at_least(self.spec_bn(x[:, None]), self.min_frames)))


class WaveNet(Backbone):
    """A network on ``[batch, 1, samples]`` that needs at least ``min_samples``."""

    def __init__(self, body: nn.Module, head: nn.Module, min_samples: int):
        super().__init__()
        self.body, self.head, self.min_samples = body, head, min_samples

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return global_max(self.body(at_least(x, self.min_samples)))


class Musicnn(Backbone):
    """Pons et al. (2018), the MagnaTagATune configuration of Won et al.: vertical
    (timbre, 0.7 and 0.4 of the mel bands) and horizontal (temporal) filters, a residual
    1-D back end, mean and max pooling, a dense layer of 200."""

    def __init__(self, n_classes: int, in_bins: int, dropout: float, backend: int = 64, dense: int = 200):
        super().__init__()
        self.spec_bn = nn.BatchNorm2d(1)
        self.vertical = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1, 204, (int(f * in_bins), 7), padding=(0, 3)), nn.BatchNorm2d(204),
                          nn.ReLU()) for f in (0.7, 0.4))
        self.horizontal = nn.ModuleList(
            nn.Sequential(nn.Conv1d(1, 51, k, padding=k // 2), nn.BatchNorm1d(51), nn.ReLU())
            for k in (129, 65, 33))
        front = 2 * 204 + 3 * 51
        self.backend = nn.ModuleList(ConvBlock(1, c, backend, kernel=7, pool=1)
                                     for c in (front, backend, backend))
        width = 2 * (front + 3 * backend)
        self.head = nn.Sequential(nn.Linear(width, dense), nn.BatchNorm1d(dense), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(dense, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spec_bn(x[:, None])
        parts = [v(x).amax(dim=2) for v in self.vertical]
        parts += [h(x.mean(dim=2)) for h in self.horizontal]
        out = torch.cat(parts, dim=1)
        features = [out]
        for i, layer in enumerate(self.backend):
            out = layer(out) + (out if i else 0)
            features.append(out)
        out = torch.cat(features, dim=1)
        return torch.cat([out.amax(dim=2), out.mean(dim=2)], dim=1)


class HarmonicCNN(Backbone):
    """Won et al. (ICASSP 2020): a harmonic filter bank (6 harmonics of 128 f0s, half a
    semitone apart from C1; only the bandwidth's Q is learnt), then a residual 2-D CNN."""

    def __init__(self, n_classes: int, sample_rate: int, n_fft: int, hop_length: int, dropout: float,
                 n_harmonics: int = 6, channels: int = 128):
        super().__init__()
        top = 12 * torch.log2(torch.tensor(sample_rate / (2 * n_harmonics) / 440.0)).item() + 69
        n_f0 = 2 * (round(top) - 24)  # half-semitone steps from C1 to the top harmonic's Nyquist
        self.frontend = HarmonicFilterbank(sample_rate, n_fft, hop_length, n_harmonics, n_f0,
                                           low_midi=24.0, high_midi=24.0 + (n_f0 - 1) / 2,
                                           learn_f0=False, width_scale=0.5)
        self.bn = nn.BatchNorm2d(n_harmonics)
        c = channels
        self.body = nn.Sequential(
            ConvBlock(2, n_harmonics, c), ResBlock(c, c, pool=2), ResBlock(c, c, pool=2),
            ResBlock(c, c, pool=2), ConvBlock(2, c, 2 * c), ResBlock(2 * c, 2 * c, pool=(2, 3)),
            ResBlock(2 * c, 2 * c, pool=(2, 3)))
        self.head = DenseHead(2 * c, n_classes, dropout, hidden=2 * c)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = self.frontend(x[:, 0].float())
        return global_max(self.body(at_least(self.bn(x), 2 ** 5 * 3 * 3)))


def _fcn(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
    """Choi et al. 2016: five conv blocks, 29.1 s of 96-band log-mel."""
    pools = [(2, 4), (2, 4), (2, 4), (3, 5), (4, 4)]
    widths = [64, 128, 128, 128, 64]
    body = nn.Sequential(*(ConvBlock(2, c_in, c_out, pool=p)
                           for c_in, c_out, p in zip([1, *widths], widths, pools, strict=False)))
    return SpectrogramNet(body, DenseHead(64, n_classes, s.dropout, hidden=None), 4 * 4 * 4 * 5 * 4)


def _shortchunk(residual: bool):
    """Won et al. 2020: seven 3x3 blocks, plain or residual."""
    def build(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
        widths = [128, 128, 256, 256, 256, 256, 512]
        pairs = zip([1, *widths], widths, strict=False)
        blocks = (ResBlock(a, b, stride=2) for a, b in pairs) if residual else \
            (ConvBlock(2, a, b) for a, b in pairs)
        head = DenseHead(512, n_classes, s.dropout, hidden=512)
        return SpectrogramNet(nn.Sequential(*blocks), head, 2 ** 7)
    return build


def _samplecnn_ref(n_classes: int, in_bins: int, sample_rate: int, s: NetSettings) -> nn.Module:
    """Lee et al. 2017: 3^9 samples, stride-3 frames, pool-by-3 blocks."""
    widths = [128, 128, 256, 256, 256, 256, 256, 256, 512]
    blocks = [ConvBlock(1, a, b, pool=3) for a, b in zip([128, *widths], widths, strict=False)]
    body = nn.Sequential(ConvBlock(1, 1, 128, stride=3, pool=1), *blocks,
                         ConvBlock(1, 512, 512, kernel=1, pool=1))
    return WaveNet(body, DenseHead(512, n_classes, s.dropout, hidden=None), 3 ** 10)


FCN = Architecture(_fcn, doc="FCN of Choi et al. 2016 at its published size")
MUSICNN = Architecture(lambda n, bins, sr, s: Musicnn(n, bins, s.dropout),
                       doc="musicnn of Pons et al. 2018 at its published size")
SHORTCHUNK_CNN = Architecture(_shortchunk(False), doc="short-chunk CNN of Won et al. 2020")
SHORTCHUNK_RESNET = Architecture(_shortchunk(True), doc="short-chunk ResNet of Won et al. 2020")
SAMPLECNN_REF = Architecture(_samplecnn_ref, reads_wave=True,
                             doc="SampleCNN of Lee et al. 2017 at its published size")
HARMONICCNN_REF = Architecture(
    lambda n, bins, sr, s: HarmonicCNN(n, sr, s.n_fft, s.hop_length, s.dropout), reads_wave=True,
    doc="Harmonic CNN of Won et al. 2019 at its published size")
