"""The deep family's parameters in groups: the network, its cached input, chunked training
and contrastive pretraining. ``DeepSystem`` takes them all; the metric family takes the
chunked training group (with its own defaults) and passes it on to its backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicbench.systems.deep.architectures import MODELS, SPECTRAL_FRONTENDS
from musicbench.systems.deep.contrastive import DEFAULT_VIEWS, VIEWS
from musicbench.systems.params import (
    COUNT,
    FRACTION,
    N_FFT,
    NON_NEGATIVE,
    POSITIVE,
    Either,
    Names,
    Number,
    OneOf,
    Param,
    Params,
    Registered,
    Rule,
)


class Widths(Rule):
    """None, or a non-empty list of positive integers (one width per block)."""

    def accepts(self, value: Any) -> bool:
        return value is None or (isinstance(value, (list, tuple)) and len(value) > 0
                                 and all(COUNT.accepts(v) for v in value))

    def __str__(self) -> str:
        return "None or a non-empty list of integers >= 1"


SSL = "ssl"  # ``init``: pretrain on the training audio inside ``fit``


class Init(Rule):
    """None, ``ssl``, or the path of an existing checkpoint."""

    def accepts(self, value: Any) -> bool:
        return value is None or value == SSL or (isinstance(value, str) and Path(value).is_file())

    def __str__(self) -> str:
        return (f"None (random initialisation), {SSL!r} (pretrain on the training audio in fit) or "
                "the path of an existing checkpoint (written by `musicbench pretrain`)")


MODEL = Params(model=Param("cnn2d", Registered(MODELS)))
#: the cached input the network reads (``DeepInput``): a spectrogram front end, or the
#: waveform at ``sample_rate`` (None: the task's rate) for the models that read it
INPUT = Params(
    frontend=Param("logmel", OneOf(*SPECTRAL_FRONTENDS)),
    sample_rate=Param(None, Either(OneOf(None), COUNT)),
    n_fft=Param(1024, N_FFT),
    hop_length=Param(512, COUNT),
    n_mels=Param(64, COUNT),
    f_max=Param(None, Either(OneOf(None), POSITIVE)),
    n_bins=Param(84, COUNT),
    fmin=Param(32.70, POSITIVE),
)
#: the network's settings (``NetSettings``); ``channels`` (one width per block) overrides
#: ``width`` and ``n_blocks``
NETWORK = Params(
    n_harmonics=Param(6, COUNT),
    n_f0=Param(48, COUNT),
    width=Param(16, COUNT),
    n_blocks=Param(4, COUNT),
    channels=Param(None, Widths()),
    dropout=Param(0.3, Number(0, 1, high_open=True)),
)
#: training on fixed-length chunks of each clip (``TrainConfig``), scored per clip over
#: its chunks
CHUNKED_TRAINING = Params(
    chunk_seconds=Param(1.5, POSITIVE),
    eval_overlap=Param(0.5, Number(0, 1, high_open=True)),
    valid_chunks=Param(0, Number(0, integer=True)),
    chunks_per_clip=Param(1, COUNT),
    batch_size=Param(16, Number(2, integer=True)),  # batch norm needs two items
    lr=Param(3e-3, NON_NEGATIVE),
    weight_decay=Param(1e-2, NON_NEGATIVE),
    max_epochs=Param(30, COUNT),
    patience=Param(8, Number(0, integer=True)),
    warmup_epochs=Param(1.0, NON_NEGATIVE),
    augment_p=Param(0.5, FRACTION),
    amp=Param(True, OneOf(True, False, "bf16")),
    torch_compile=Param(False, OneOf(True, False)),
    head_loss=Param("mse", OneOf("mse", "huber"), added=True),
)
#: where the backbone starts (``init``), whether it is frozen, and the contrastive
#: pretraining ``init = "ssl"`` runs inside ``fit``
PRETRAINING = Params(
    init=Param(None, Init()),
    freeze=Param(False, OneOf(True, False)),
    pretrain_epochs=Param(20, Number(0, integer=True)),
    pretrain_batch_size=Param(32, Number(2, integer=True)),  # negatives need a second clip
    pretrain_lr=Param(1e-3, POSITIVE),
    temperature=Param(0.1, POSITIVE),
    views=Param(DEFAULT_VIEWS, Names(VIEWS, empty=True)),
)
