"""The contract every registered deep model passes: a new entry of ``MODELS`` is tested
here with no new test code.

Each network maps input chunks (a spectrogram ``[batch, bins, frames]``, or the waveform
``[batch, 1, samples]`` where it ``reads_wave``) to ``[batch, n_classes]`` finite logits,
is a backbone (the head on ``embed``, a trunk that freezes), and is initialised the same
under the same seed (the determinism of every deep cell rests on it). Chunks are short:
the networks pad what their poolings need.
"""

from __future__ import annotations

import pytest
import torch

from musicbench.systems.deep.architectures import MODELS, build_model
from musicbench.systems.deep.backbone import Backbone

SAMPLE_RATE, BINS, FRAMES, SAMPLES = 16000, 128, 64, 16000  # 128 mel bins: the published inputs


def _chunks(name: str, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    shape = (batch, 1, SAMPLES) if MODELS[name].reads_wave else (batch, BINS, FRAMES)
    return torch.randn(*shape, generator=g)


def _build(name: str, n_classes: int, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    return build_model(name, n_classes, BINS, SAMPLE_RATE).eval()


@pytest.fixture(params=MODELS.names(), scope="module")
def name(request) -> str:
    return request.param


@pytest.mark.parametrize("n_classes", [3, 7])
def test_maps_chunks_to_one_logit_per_class(name, n_classes):
    net = _build(name, n_classes)
    with torch.no_grad():
        out = net(_chunks(name))
    assert out.shape == (2, n_classes) and torch.isfinite(out).all()


def test_is_a_backbone_whose_head_reads_the_embedding(name):
    net = _build(name, 4)
    x = _chunks(name)
    assert isinstance(net, Backbone)
    with torch.no_grad():
        emb, out = net.embed(x), net(x)
    assert emb.shape == (2, net.embedding_size)
    torch.testing.assert_close(net.head(emb), out)
    net.freeze_backbone().train()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and trainable == {n for n, _ in net.named_parameters() if n.startswith("head.")}


def test_same_seed_same_weights_another_seed_others(name):
    a, b, c = _build(name, 3, seed=0), _build(name, 3, seed=0), _build(name, 3, seed=1)
    pa, pb, pc = (torch.cat([p.flatten() for p in n.parameters()]) for n in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_says_what_it_reads(name):
    entry = MODELS[name]
    assert entry.doc and isinstance(entry.reads_wave, bool)
