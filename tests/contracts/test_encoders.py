"""Contract: every registered encoder preset builds from its real weights and keeps the
encoder API (shapes, finite values, times evenly spaced at the declared hop and inside the
clip, determinism, a filled card, clear refusals of bad input), and, through
``musicbench.hear``, passes the checks of HEAR's validator (``hearvalidator`` 2021.0.6:
shapes, float32, milliseconds, regular timestamps) without TensorFlow;
``bench/hear_validator.sh`` runs the validator itself.

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

from musicbench import hear
from musicbench.encoders import FAMILIES, build_encoder, encoder_names, get_encoder_preset
from musicbench.encoders.base import Encoder, file_digest
from musicbench.errors import ConfigError, UnknownNameError

HEAR_TOY = "hear-toy"
HEAR_TOY_PRESET = 'description = "toy"\nfamily = "hear"\nlicence = "MIT"\n[params]\nmodule = "hear_toy"\n'
HEAR_RATES = (16000, 22050, 32000, 44100, 48000)  # hearvalidator's ACCEPTABLE_SAMPLE_RATE


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
    name, enc = encoder
    audio, (emb, times) = outputs
    n, T, D = emb.shape
    assert (n, D) == (2, enc.timestamp_embedding_size) and T > 1
    assert times.shape == (2, T) and emb.dtype == times.dtype == torch.float32
    assert torch.isfinite(emb).all() and torch.isfinite(times).all()
    duration = audio.shape[1] / enc.sample_rate
    assert times.min() >= 0 and times.max() <= duration
    if name != HEAR_TOY:  # a wrapped HEAR module declares no hop; every registered encoder does
        assert enc.hop_seconds and enc.hop_seconds > 0
        torch.testing.assert_close(times.diff(dim=1), torch.full((2, T - 1), enc.hop_seconds),
                                   atol=1e-5, rtol=0, msg="frames must be evenly spaced at hop_seconds")
    assert (times[:, 1:] > times[:, :-1]).all(), "times must increase"


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


def white_noise(n: int, seconds: float, sr: int, seed: int = 0) -> torch.Tensor:
    """What hearvalidator feeds a model: uniform noise in [-1, 1], ``int(seconds * sr)`` samples."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, int(seconds * sr)), generator=g) * 2 - 1


def test_hear_module_passes_the_validator_checks(encoder):
    """hearvalidator 2021.0.6's checks, on the lengths it uses, through ``musicbench.hear``;
    plus what it cannot see: the milliseconds are the encoder's seconds and hop, all clips
    of a batch share their times, and a clip's scene vector does not depend on its batch."""
    name, enc = encoder
    assert enc.sample_rate in HEAR_RATES
    for size in (enc.sample_rate, enc.scene_embedding_size, enc.timestamp_embedding_size):
        assert type(size) is int
    for seconds in (1.07, 1.98, 4.0):
        emb, ms = hear.get_timestamp_embeddings(white_noise(2, seconds, enc.sample_rate), enc)
        assert emb.dtype == torch.float32 and emb.ndim == 3 and ms.ndim == 2
        assert emb.shape[0] == 2 and emb.shape[:2] == ms.shape
        assert emb.shape[2] == enc.timestamp_embedding_size
        ms = ms.double().cpu().numpy()
        assert (ms[1] == ms[0]).all()
        assert 0 <= ms.min() and ms.max() <= 1000 * seconds
        if ms.shape[1] > 1:
            gaps = np.diff(ms, axis=1)
            assert np.abs(gaps - gaps.mean()).max() <= 1, "Timestamps should occur at regular intervals"
            if name != HEAR_TOY:
                np.testing.assert_allclose(gaps, 1000 * enc.hop_seconds, atol=0.01)
    audio = white_noise(2, 2.74, enc.sample_rate, seed=1)
    scene = hear.get_scene_embeddings(audio, enc)
    assert scene.dtype == torch.float32 and scene.shape == (2, enc.scene_embedding_size)
    torch.testing.assert_close(hear.get_scene_embeddings(audio[1:], enc), scene[1:], atol=1e-4, rtol=1e-4)


def test_bad_input_is_refused_naming_the_encoder_shape_and_rate(encoder):
    name, enc = encoder
    sr = enc.sample_rate
    takes = rf"encoder {re.escape(name)} takes float audio \[n_clips, n_samples\] at {sr} Hz"
    clip = tone(sr, 0.25)
    with pytest.raises(ConfigError, match=takes + r", got shape \[\d+\] \(one clip: audio\[None\]\)"):
        enc.timestamps(clip)
    with pytest.raises(ConfigError, match=takes):
        hear.get_scene_embeddings(clip, enc)
    with pytest.raises(ConfigError, match=takes + ", got 8000 Hz: resample it first"):
        enc.scene(clip[None], sample_rate=8000)
    with pytest.raises(ConfigError, match=takes + ", got an empty batch"):
        enc.timestamps(clip[None, :0])
    with pytest.raises(ConfigError, match=takes + ", got torch.int16 samples"):
        enc.timestamps((clip[None] * 1000).to(torch.int16))
    assert enc.timestamps(clip[None], sample_rate=sr)[0].shape[0] == 1


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
    """Groups of five 10 ms frames, timestamped at their middle frame; of the 101 frames of
    1 s, the lone 101st would be centred after the clip's end, so it is not a group."""
    enc = build_encoder("crepe-tiny", layer="penultimate", hop_seconds=0.01, pool=5)
    audio = tone(16000, 1.0)[None]
    emb, times = enc.timestamps(audio)
    assert enc.timestamp_embedding_size == 256 and emb.shape == (1, 20, 256)
    torch.testing.assert_close(times[0], 0.02 + 0.05 * torch.arange(20), atol=1e-6, rtol=0)
    frames, _ = build_encoder("crepe-tiny", layer="penultimate", hop_seconds=0.01).timestamps(audio)
    torch.testing.assert_close(emb[0, 3], frames[0, 15:20].mean(dim=0), atol=1e-5, rtol=1e-5)


# --- HEAR adapter -----------------------------------------------------------------------


def test_hear_round_trip(tmp_path):
    from musicbench.encoders.hear import HearEncoder

    import hear_toy

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


def test_hear_preset_licence_and_version_reach_the_card(tmp_path, monkeypatch):
    """The preset's licence, not the module's ``__license__`` (MIT) nor "unknown"; the source
    names the module's version."""
    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "toy-apache.toml").write_text(
        HEAR_TOY_PRESET.replace('"MIT"', '"Apache-2.0"'))
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    card = build_encoder("toy-apache").card()
    assert card.licence == "Apache-2.0" and card.name == "toy-apache"
    assert card.source == "HEAR module hear_toy, hear_toy 0.0.1"


def test_module_version_names_the_installing_distribution():
    import importlib.metadata

    import torch.nn.functional

    from musicbench.encoders.hear import module_version

    import hear_toy

    assert module_version(torch.nn.functional) == f"torch=={importlib.metadata.version('torch')}"
    assert module_version(hear_toy) == "hear_toy 0.0.1"  # a bare file: its __version__


def test_hear_timestamps_in_seconds_are_refused(tmp_path, monkeypatch):
    """A module that passes seconds where HEAR says milliseconds would give heareval empty
    event labels; here it is an error naming the module."""
    from musicbench.encoders.hear import HearEncoder

    (tmp_path / "hear_seconds.py").write_text(
        "from hear_toy import get_scene_embeddings, load_model\n"
        "from hear_toy import get_timestamp_embeddings as in_ms\n\n"
        "def get_timestamp_embeddings(audio, model):\n"
        "    emb, ms = in_ms(audio, model)\n    return emb, ms / 1000\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    enc = HearEncoder("hear_seconds")
    with pytest.raises(ConfigError, match="'hear_seconds': timestamps up to .* for a clip of 2000 ms; "
                                          "HEAR timestamps are frame centres in milliseconds"):
        enc.timestamps(tone(16000, 2.0)[None])


# --- own checkpoints ----------------------------------------------------------------------

OWN = [n for n in encoder_names() if get_encoder_preset(n)["family"] in ("deep", "ssl", "metric")]


@pytest.mark.parametrize("name", OWN)
def test_own_checkpoint_chunks_stay_on_the_grid_and_cover_the_tail(name):
    """4 s of audio: chunks every ``hop_seconds`` from the start, as many as are centred
    inside the clip, the last one padded past its end (no extra chunk aligned to the end)."""
    enc = build_encoder(name)
    chunk_seconds = enc.chunk_samples / enc.sample_rate
    emb, times = enc.timestamps(tone(enc.sample_rate, 4.0)[None])
    count = 1 + math.floor((4.0 - chunk_seconds / 2) / enc.hop_seconds)
    assert emb.shape[1] == count > 2
    torch.testing.assert_close(times[0], chunk_seconds / 2 + enc.hop_seconds * torch.arange(count),
                               atol=1e-5, rtol=0)
    assert float(times[0, -1]) + chunk_seconds / 2 >= 4.0, "the tail must be covered"


# --- musicbench as a HEAR module ----------------------------------------------------------


def test_hear_load_model_takes_a_name_or_the_default():
    model = hear.load_model("crepe-tiny")
    assert isinstance(model, torch.nn.Module) and model.name == "crepe-tiny"
    sizes = (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size)
    assert sizes == (16000, 360, 360)
    assert hear.load_model(encoder="crepe-tiny", hop_seconds=0.02).hop_seconds == 0.02
    default = hear.load_model()
    assert default.name == hear.DEFAULT_ENCODER and hear.load_model("").name == hear.DEFAULT_ENCODER
    audio = tone(16000, 2.0)[None]
    emb, ms = hear.get_timestamp_embeddings(audio, model)
    ours, seconds = build_encoder("crepe-tiny").timestamps(audio)
    torch.testing.assert_close(emb, ours, atol=0, rtol=0)
    torch.testing.assert_close(ms, 1000 * seconds)


@pytest.mark.parametrize("name", OWN)
def test_hear_load_model_takes_a_saved_checkpoint(name):
    """A checkpoint alone (a deep system's, a metric system's, a pretrain backbone's)
    becomes the encoder its preset builds, with the same embeddings."""
    enc = build_encoder(name)
    model = hear.load_model(str(enc.checkpoint))
    assert type(model) is type(enc) and model.name == str(enc.checkpoint)
    audio = tone(enc.sample_rate, 2.5)[None]
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), enc.scene(audio), atol=0, rtol=0)


def test_hear_load_model_refusals(tmp_path):
    neither = r"'no-such' is neither a registered encoder \(.*aisfx.*\) nor a checkpoint"
    with pytest.raises(ConfigError, match=neither):
        hear.load_model("no-such")
    with pytest.raises(ConfigError, match="not both"):
        hear.load_model("aisfx", encoder="crepe-tiny")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a musicbench deep-system checkpoint"):
        hear.load_model(str(tmp_path / "bad.pt"))
    with pytest.raises(ConfigError, match="needs a model from musicbench.hear.load_model, got Linear"):
        hear.get_scene_embeddings(tone(16000, 1.0)[None], torch.nn.Linear(2, 2))


def test_musicbench_hear_plugs_into_the_hear_adapter():
    """Both ways: ``musicbench.hear`` wrapped as any HEAR module gives back the encoder's
    own embeddings and times (milliseconds out, seconds back in)."""
    from musicbench.encoders.hear import HearEncoder

    wrapped = HearEncoder("musicbench.hear", model_file="crepe-tiny", licence="MIT")
    audio = batch(16000)
    emb, times = build_encoder("crepe-tiny").timestamps(audio)
    ours, back = wrapped.timestamps(audio)
    torch.testing.assert_close(ours, emb, atol=0, rtol=0)
    torch.testing.assert_close(back, times)
    assert wrapped.card().source.startswith("HEAR module musicbench.hear, musicbench")
