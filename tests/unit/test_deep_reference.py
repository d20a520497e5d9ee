"""The reference-size presets: the published architectures of Won et al. (2020) at their
published sizes. Adding a ``*-ref`` preset needs only a row in ``PUBLISHED``.

The paper gives no parameter counts; the figures below are derived from the
architecture definitions of its public code (``minzwon/sota-music-tagging-models``,
``training/model.py`` and ``training/modules.py``) for the 50 MagnaTagATune tags, layer
by layer (weights, biases and batch-norm scales and shifts; FCN and the short-chunk CNN
Musicnn and HarmonicCNN are worked through in ``docs/deep.md``).
"""

from __future__ import annotations

import pytest
import torch

from musicbench.systems import build_system, get_preset, system_names

MTAT_TAGS = 50
PUBLISHED = {  # preset: (parameters for 50 tags, sample rate, chunk samples, mel bands or None)
    "fcn-ref": (447_732, 16000, 464_000, 96),
    "musicnn-ref": (784_300, 16000, 48_000, 96),
    "shortchunk-cnn-ref": (3_687_348, 16000, 59_049, 128),
    "shortchunk-resnet-ref": (12_104_244, 16000, 59_049, 128),
    "samplecnn-ref": (1_869_874, 16000, 59_049, None),
    "harmoniccnn-ref": (3_631_551, 16000, 80_000, None),
}


def test_every_reference_preset_is_listed():
    assert sorted(n for n in system_names() if n.endswith("-ref")) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reference_preset_has_the_published_size_and_input(name):
    n_params, sample_rate, chunk, n_mels = PUBLISHED[name]
    system = build_system(name)
    spec = system.input_spec(22050)
    assert spec.sample_rate == sample_rate
    assert round(system.chunk_seconds * sample_rate) == chunk
    if n_mels is not None:
        assert system.n_mels == n_mels and spec.kind == "logmel"
    else:
        assert spec.kind == "wave"
    net = system.build_network(MTAT_TAGS, spec)
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert "Won et al. 2020" in get_preset(name)["description"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reference_network_maps_a_published_chunk_to_logits(name):
    system = build_system(name)
    spec = system.input_spec(16000)
    net = system.build_network(MTAT_TAGS, spec).eval()
    bins = 1 if spec.kind == "wave" else system.n_mels
    frames = spec.frames(round(system.chunk_seconds * spec.sample_rate))
    x = torch.randn(2, bins, frames)
    with torch.no_grad():
        out, emb = net(x), net.embed(x)
    assert out.shape == (2, MTAT_TAGS) and torch.isfinite(out).all()
    # a backbone like every deep network: the head on the embedding, and a frozen trunk
    assert emb.shape == (2, net.embedding_size)
    torch.testing.assert_close(net.head(emb), out)
    net.freeze_backbone().train()
    assert {n for n, p in net.named_parameters() if p.requires_grad} == \
        {n for n, _ in net.named_parameters() if n.startswith("head.")}
    assert not any(m.training for name, m in net.named_children() if name != "head")
