"""The deep family's networks by name: what a preset's ``model`` means.

An ``Architecture`` builds a freshly initialised network from the number of outputs,
the input bins, the sample rate and the ``NetSettings`` a system passes on, and says
whether it reads the waveform itself or a cached spectrogram. Registering a network is
one entry in ``MODELS`` (a lazy ``module:attr`` string, imported when the model is first
built).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from musicbench.registry import Registry

SPECTRAL_FRONTENDS = ("logmel", "cqt")  # the cached front ends the spectrogram models read


@dataclass(frozen=True)
class NetSettings:
    """What a system's parameters say about its network; a model ignores what it does not use.
    ``channels`` (one width per block) overrides ``width`` and ``n_blocks``."""

    n_fft: int = 1024
    hop_length: int = 512
    n_harmonics: int = 6
    n_f0: int = 48
    width: int = 16
    n_blocks: int = 4
    channels: Sequence[int] | None = None
    dropout: float = 0.3


@dataclass(frozen=True)
class Architecture:
    """``build(n_classes, in_bins, sample_rate, settings)`` -> an ``nn.Module`` mapping input
    chunks to logits (a ``Backbone``); ``reads_wave``: it takes ``[batch, 1, samples]``
    waveform chunks rather than a spectrogram."""

    build: Callable[[int, int, int, NetSettings], nn.Module]
    reads_wave: bool = False
    doc: str = ""


MODELS: Registry[Architecture] = Registry("deep model", {
    "cnn1d": "musicbench.systems.deep.models:CNN1D",
    "cnn2d": "musicbench.systems.deep.models:CNN2D",
    "samplecnn": "musicbench.systems.deep.models:SAMPLECNN",
    "harmoniccnn": "musicbench.systems.deep.models:HARMONICCNN",
    # the published architectures of Won et al. (2020) at their published sizes
    "fcn": "musicbench.systems.deep.reference:FCN",
    "musicnn": "musicbench.systems.deep.reference:MUSICNN",
    "shortchunk-cnn": "musicbench.systems.deep.reference:SHORTCHUNK_CNN",
    "shortchunk-resnet": "musicbench.systems.deep.reference:SHORTCHUNK_RESNET",
    "samplecnn-ref": "musicbench.systems.deep.reference:SAMPLECNN_REF",
    "harmoniccnn-ref": "musicbench.systems.deep.reference:HARMONICCNN_REF",
}, doc="what a deep system's 'model' names: the network trained on input chunks")


def reads_wave(model: str) -> bool:
    """Whether ``model`` reads the waveform (else a cached spectrogram front end)."""
    return MODELS[model].reads_wave


def build_model(name: str, n_classes: int, in_bins: int, sample_rate: int, **settings: Any) -> nn.Module:
    """The network ``name`` (one of ``MODELS``) for ``n_classes`` outputs, reading ``in_bins``
    input bins, with ``settings`` the fields of ``NetSettings``."""
    return MODELS[name].build(n_classes, in_bins, sample_rate, NetSettings(**settings))
