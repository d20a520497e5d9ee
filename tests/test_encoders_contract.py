"""Contract: every registered encoder preset builds from its real weights and keeps the
encoder API (shapes, finite values, increasing times, determinism, a filled card).

Adding a preset to ``encoders/`` is enough to be covered here. The HEAR adapter is covered
too, through a workspace preset around ``tests/hear_toy.py``.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch

from musicbench.encoders import FAMILIES, build_encoder, encoder_names, get_encoder_preset
from musicbench.encoders.base import Encoder, file_digest
from musicbench.errors import ConfigError, UnknownNameError

HEAR_TOY = "hear-toy"
HEAR_TOY_PRESET = 'description = "toy"\nfamily = "hear"\nlicence = "MIT"\n[params]\nmodule = "hear_toy"\n'


def tone(sr: int, seconds: float, f0: float = 220.0, seed: int = 0) -> torch.Tensor:
    """A harmonic tone with a little noise: pitched, broadband, deterministic."""
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    x = 0.3 * x + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return torch.tensor(x, dtype=torch.float32)


def batch(sr: int) -> torch.Tensor:
    """A 1 s and a 7 s clip in one batch, the short one zero-padded (7 s: more than one
    frame even for encoders with 3-second windows)."""
    short, long = tone(sr, 1.0, 330.0, 1), tone(sr, 7.0, 220.0, 2)
    return torch.stack([torch.nn.functional.pad(short, (0, len(long) - len(short))), long])


@pytest.fixture(scope="module", params=encoder_names() + [HEAR_TOY])
def encoder(request, tmp_path_factory) -> tuple[str, Encoder]:
    name = request.param
    with pytest.MonkeyPatch.context() as mp:
        if name == HEAR_TOY:
            ws = tmp_path_factory.mktemp("hear_ws")
            (ws / "encoders").mkdir()
            (ws / "encoders" / f"{HEAR_TOY}.toml").write_text(HEAR_TOY_PRESET)
            mp.setenv("MUSICBENCH_WORKSPACE", str(ws))
        try:
            return name, build_encoder(name)
        except ConfigError as exc:
            if "pip install" in str(exc) and not os.environ.get("CI"):  # CI installs every one
                pytest.skip(f"{name}: its package is not installed ({exc})")
            raise


@pytest.fixture(scope="module")
def outputs(encoder):
    _, enc = encoder
    audio = batch(enc.sample_rate)
    return audio, enc.timestamps(audio)


def test_builds_frozen_with_declared_sizes(encoder):
    name, enc = encoder
    assert enc.sample_rate > 0
    assert enc.scene_embedding_size > 0 and enc.timestamp_embedding_size > 0
    assert not enc.training
    assert not any(p.requires_grad for p in enc.parameters())
    if name != HEAR_TOY:
        preset = get_encoder_preset(name)
        assert preset["description"] and preset["licence"]


def test_timestamps_on_a_padded_batch(encoder, outputs):
    _, enc = encoder
    audio, (emb, times) = outputs
    n, T, D = emb.shape
    assert (n, D) == (2, enc.timestamp_embedding_size) and T > 1
    assert times.shape == (2, T)
    assert torch.isfinite(emb).all() and torch.isfinite(times).all()
    assert (times[:, 1:] > times[:, :-1]).all(), "times must increase"
    duration = audio.shape[1] / enc.sample_rate
    assert times.min() >= 0 and times.max() <= duration


def test_batch_does_not_change_a_clip(encoder, outputs):
    _, enc = encoder
    audio, (emb, times) = outputs
    alone, alone_times = enc.timestamps(audio[1:])
    torch.testing.assert_close(alone, emb[1:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(alone_times, times[1:])


def test_short_clip(encoder):
    _, enc = encoder
    emb, times = enc.timestamps(tone(enc.sample_rate, 0.25)[None])
    assert emb.shape[0] == 1 and emb.shape[1] >= 1 and emb.shape[2] == enc.timestamp_embedding_size
    assert times.shape == emb.shape[:2]
    assert torch.isfinite(emb).all()
    assert 0 <= times.min() and times.max() <= 0.25


def test_scene_and_determinism(encoder, outputs):
    _, enc = encoder
    audio, (emb, times) = outputs
    scene = enc.scene(audio)
    assert scene.shape == (2, enc.scene_embedding_size)
    assert torch.isfinite(scene).all()
    torch.testing.assert_close(enc.scene(audio), scene, atol=0, rtol=0)
    emb2, times2 = enc.timestamps(audio)
    torch.testing.assert_close(emb2, emb, atol=0, rtol=0)
    torch.testing.assert_close(times2, times, atol=0, rtol=0)


def test_card(encoder):
    name, enc = encoder
    card = enc.card()
    assert card.name == name
    assert all(v not in (None, "") for v in card.as_dict().values())
    assert re.fullmatch(r"[0-9a-f]{16}", card.weights_digest)
    assert (card.sample_rate, card.scene_embedding_size, card.timestamp_embedding_size) == (
        enc.sample_rate, enc.scene_embedding_size, enc.timestamp_embedding_size)
    assert card.sample_rate > 0


# --- registry ---------------------------------------------------------------------------


def test_unknown_encoder_and_parameter_list_the_valid_names():
    with pytest.raises(UnknownNameError, match="valid encoders: .*crepe-tiny"):
        build_encoder("no-such-encoder")
    with pytest.raises(UnknownNameError, match="valid parameters of crepe-tiny .*hop_seconds"):
        build_encoder("crepe-tiny", hop_sconds=0.1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_refused_before_loading():
    with pytest.raises(ConfigError, match="not available"):
        build_encoder("crepe-tiny", device="cuda")


def test_unknown_family_lists_the_families(tmp_path, monkeypatch):
    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "odd.toml").write_text('family = "nope"\nlicence = "MIT"\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    with pytest.raises(UnknownNameError, match="valid encoder families: " + ", ".join(sorted(FAMILIES))):
        build_encoder("odd")


def test_list_encoders_survives_an_unavailable_preset(tmp_path, monkeypatch, capsys):
    from musicbench.cli import main

    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "broken.toml").write_text(
        'description = "x"\nfamily = "hear"\nlicence = "MIT"\n[params]\nmodule = "no_such_hear_module"\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    assert main(["list", "encoders"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"broken .* unavailable: .*no_such_hear_module", out)
    for name in encoder_names():
        assert re.search(rf"^{re.escape(name)}\s", out, re.M)


# --- aisfx ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aisfx():
    if "aisfx" not in encoder_names():
        pytest.skip("no aisfx preset")
    pytest.importorskip("aisfx", reason="pip install --no-deps aisfx==0.1.2")
    return build_encoder("aisfx")


def test_aisfx_short_clip_gives_one_block(aisfx):
    emb, times = aisfx.timestamps(tone(aisfx.sample_rate, 0.5)[None])
    assert emb.shape == (1, 1, 512)
    assert math.isclose(float(times[0, 0]), 0.25, rel_tol=1e-5)
    assert emb.abs().sum() > 0


def test_aisfx_blocks_every_half_block(aisfx):
    emb, times = aisfx.timestamps(tone(aisfx.sample_rate, 10.0)[None])
    frames = 1 + 10 * 44100 // 1024
    assert emb.shape[1] == 1 + (frames - 100) // 50
    assert math.isclose(float(times[0, 1] - times[0, 0]), 50 * 1024 / 44100, rel_tol=1e-5)


def test_aisfx_matches_the_package_network_and_blocking(aisfx):
    """Our blocking and weight loading give what aisfx's own inference code computes."""
    from aisfx.inference import model_get_embedding
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet

    from musicbench.encoders.aisfx import checkpoint_path, load_checkpoint

    state, datasets = load_checkpoint(checkpoint_path())
    model = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, "cpu")
    model.load_state_dict(state)
    model.eval()
    audio = tone(aisfx.sample_rate, 5.0)[None]
    ref = model_get_embedding(aisfx.logmel(audio)[0].numpy(), 0.5, True, model, "cpu")
    torch.testing.assert_close(aisfx.timestamps(audio)[0][0], ref, atol=1e-5, rtol=1e-5)


def test_aisfx_mel_filters_are_unit_sum():
    from musicbench.encoders.aisfx import essentia_mel_filters

    fb = essentia_mel_filters()
    assert fb.shape == (96, 1025)
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, rtol=1e-9)


# --- crepe ------------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [110.0, 440.0])
def test_crepe_posterior_peaks_at_the_pitch(f0):
    if "crepe-tiny" not in encoder_names():
        pytest.skip("no crepe-tiny preset")
    enc = build_encoder("crepe-tiny")
    sr = enc.sample_rate
    t = torch.arange(sr) / sr
    emb, _ = enc.timestamps(0.5 * torch.sin(2 * math.pi * f0 * t)[None])
    bins = emb[0, 5:-5].argmax(dim=-1).float().median()
    cents = 20 * bins + 1997.3794084376191  # torchcrepe.convert.bins_to_cents
    assert abs(1200 * math.log2(10 * 2 ** (cents / 1200) / f0)) < 25


def test_crepe_penultimate_layer_and_pooling():
    enc = build_encoder("crepe-tiny", layer="penultimate", hop_seconds=0.01, pool=5)
    emb, times = enc.timestamps(tone(16000, 1.0)[None])
    assert enc.timestamp_embedding_size == 256 and emb.shape == (1, 21, 256)
    assert math.isclose(float(times[0, 1] - times[0, 0]), 0.05, rel_tol=1e-5)


# --- HEAR adapter -----------------------------------------------------------------------


def test_hear_round_trip(tmp_path):
    import hear_toy

    from musicbench.encoders.hear import HearEncoder

    enc = HearEncoder("hear_toy")
    model = hear_toy.load_model()
    audio = batch(16000)
    emb, ms = hear_toy.get_timestamp_embeddings(audio, model)
    ours, seconds = enc.timestamps(audio)
    torch.testing.assert_close(ours, emb)
    torch.testing.assert_close(seconds * 1000, ms)
    torch.testing.assert_close(enc.scene(audio), hear_toy.get_scene_embeddings(audio, model))
    assert enc.card().licence == "MIT" and "hear_toy 0.0.1" in enc.card().source

    weights = tmp_path / "toy.pt"
    torch.save({k: v * 2 for k, v in model.state_dict().items()}, weights)
    from_file = HearEncoder("hear_toy", model_file=str(weights), licence="CC0-1.0")
    card = from_file.card()
    assert card.weights_digest == file_digest(weights) and str(weights) in card.source
    assert card.licence == "CC0-1.0"
    torch.testing.assert_close(from_file.timestamps(audio)[0], 2 * emb)


def test_hear_module_missing_a_function_is_named(tmp_path, monkeypatch):
    from musicbench.encoders.hear import HearEncoder

    (tmp_path / "hear_partial.py").write_text(
        "def load_model(model_file_path=''):\n    return object()\n\n"
        "def get_timestamp_embeddings(audio, model):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="hear_partial.*does not define get_scene_embeddings"):
        HearEncoder("hear_partial")


def test_hear_model_missing_an_attribute_is_named(tmp_path, monkeypatch):
    from musicbench.encoders.hear import HearEncoder

    (tmp_path / "hear_noattr.py").write_text(
        "class M:\n    sample_rate = 16000\n    scene_embedding_size = 4\n\n"
        "def load_model(model_file_path=''):\n    return M()\n\n"
        "def get_scene_embeddings(audio, model):\n    return None\n\n"
        "def get_timestamp_embeddings(audio, model):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="lacks timestamp_embedding_size"):
        HearEncoder("hear_noattr")


def test_hear_module_that_does_not_import(tmp_path):
    from musicbench.encoders.hear import HearEncoder

    with pytest.raises(ConfigError, match="'no_such_hear_module' cannot be imported"):
        HearEncoder("no_such_hear_module")
