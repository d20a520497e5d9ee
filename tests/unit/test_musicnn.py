"""musicnn encoder: the TF checkpoint reader, and the torch port against musicnn's own TF graph.

The reference outputs come from ``tests/fixtures/make_musicnn_reference.py`` (run in a
throwaway TensorFlow environment). "Relative deviation" below is the largest absolute
difference divided by the largest absolute reference value of the same array, so that
ReLU zeros and tiny tag probabilities do not make it ill-defined.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from musicbench.encoders import musicnn as mn
from musicbench.encoders import tfcheckpoint as tfc
from musicbench.encoders.tfcheckpoint import CheckpointError, _crc32c, read_checkpoint, read_index
from musicbench.errors import UnknownNameError

from helpers import FIXTURES

sys.path.insert(0, str(FIXTURES))
from make_musicnn_reference import clips, tf2_values  # noqa: E402

sys.path.remove(str(FIXTURES))

HAVE_MUSICNN = importlib.util.find_spec("musicnn") is not None
needs_musicnn = pytest.mark.skipif(
    not HAVE_MUSICNN, reason="musicnn weights absent: pip install --no-deps musicnn==0.1.0"
)
TOLERANCE = 1e-4
SR = mn.SAMPLE_RATE


@pytest.fixture(scope="module")
def encoders():
    cache: dict[tuple[str, str], mn.MusicnnEncoder] = {}

    def get(model: str = "MTT_musicnn", layer: str = "max_pool") -> mn.MusicnnEncoder:
        if (model, layer) not in cache:
            cache[model, layer] = mn.MusicnnEncoder(model=model, layer=layer)
        return cache[model, layer]

    return get


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


# --------------------------------------------------------------------------- reader


def test_crc32c_known_vector(monkeypatch):
    assert _crc32c(b"123456789") == 0xE3069283
    monkeypatch.setitem(sys.modules, "google_crc32c", None)  # force the pure-Python path
    assert _crc32c(b"123456789") == 0xE3069283


@needs_musicnn
@pytest.mark.parametrize("model", mn.MODELS)
def test_reader_names_and_shapes(model):
    tensors = read_checkpoint(mn.checkpoint_dir(model))
    weights = {k: v for k, v in tensors.items() if "Adam" not in k and not k.endswith("_power")}
    assert sum(k.startswith("conv2d") and k.endswith("/kernel") for k in weights) == 8
    assert sum(k.endswith("/moving_variance") for k in weights) == 11
    assert sum(k.startswith("dense") and k.endswith("/kernel") for k in weights) == 2
    assert len(weights) == 64
    expected = {
        "conv2d/kernel": (7, 38, 1, 204),
        "conv2d_1/kernel": (7, 67, 1, 204),
        "conv2d_2/kernel": (128, 1, 1, 51),
        "conv2d_4/kernel": (32, 1, 1, 51),
        "conv2d_5/kernel": (7, 561, 1, 64),
        "batch_normalization_9/gamma": (1506,),
        "dense/kernel": (1506, 200),
        "dense_1/kernel": (200, 50),
    }
    for name, shape in expected.items():
        assert weights[name].shape == shape and weights[name].dtype == np.float32
    assert all(np.isfinite(v).all() for v in weights.values())


@pytest.mark.parametrize("pure_python_crc", [False, True])
def test_reader_tf2_bundle(monkeypatch, pure_python_crc):
    """A TF2 ``tf.train.Checkpoint``: object-graph names, string tensors, several dtypes."""
    if pure_python_crc:
        monkeypatch.setitem(sys.modules, "google_crc32c", None)
    tensors = read_checkpoint(FIXTURES / "tf2_checkpoint" / "ckpt-1")
    assert tensors["_CHECKPOINTABLE_OBJECT_GRAPH"].dtype == object
    for name, value in tf2_values().items():
        got = tensors[f"{name}/.ATTRIBUTES/VARIABLE_VALUE"]
        assert got.shape == value.shape and got.dtype == value.dtype, name
        assert np.array_equal(got, value), name
    assert read_checkpoint(FIXTURES / "tf2_checkpoint" / "ckpt-1.index").keys() == tensors.keys()


def _reseal(index: bytes) -> bytes:
    """Recompute the crc32c trailers of an edited index's data blocks."""
    data = bytearray(index)
    footer = bytes(data[-48:])
    _, pos = tfc._varint(footer, 0)
    _, pos = tfc._varint(footer, pos)
    off, pos = tfc._varint(footer, pos)
    size, _ = tfc._varint(footer, pos)
    for _, handle in tfc._block_entries(bytes(data[off : off + size]), Path("index")):
        b_off, p = tfc._varint(handle, 0)
        b_size, _ = tfc._varint(handle, p)
        crc = _crc32c(bytes(data[b_off : b_off + b_size + 1]))
        masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
        data[b_off + b_size + 1 : b_off + b_size + 5] = masked.to_bytes(4, "little")
    return bytes(data)


def _copy_checkpoint(tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    dst.mkdir()
    for f in (".index", ".data-00000-of-00001"):
        shutil.copy(mn.checkpoint_dir("MTT_musicnn") / f, dst / f)
    return dst


def test_reader_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="index not found"):
        read_checkpoint(tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="exactly one"):
        read_checkpoint(tmp_path)


@needs_musicnn
def test_reader_errors_are_explicit(tmp_path):
    ckpt = _copy_checkpoint(tmp_path)
    (ckpt / ".data-00000-of-00001").rename(ckpt / "moved")
    with pytest.raises(CheckpointError, match="data shard not found"):
        read_checkpoint(ckpt)
    (ckpt / "moved").rename(ckpt / ".data-00000-of-00001")

    index = (ckpt / ".index").read_bytes()
    key = b"batch_normalization/beta\x08\x01"  # entry's dtype field: DT_FLOAT
    assert index.count(key) == 1
    patched = index.replace(key, key[:-1] + b"\x0e")  # DT_BFLOAT16
    (ckpt / ".index").write_bytes(patched)
    with pytest.raises(CheckpointError, match="fails its crc32c"):
        read_checkpoint(ckpt)
    (ckpt / ".index").write_bytes(_reseal(patched))
    with pytest.raises(CheckpointError, match="unsupported dtype enum 14"):
        read_checkpoint(ckpt)
    (ckpt / ".index").write_bytes(index)

    _, entries = read_index(ckpt)
    entry = next(e for e in entries if e.name == "dense_1/kernel")
    data = bytearray((ckpt / ".data-00000-of-00001").read_bytes())
    data[entry.offset + 7] ^= 0xFF
    (ckpt / ".data-00000-of-00001").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="crc32c mismatch"):
        read_checkpoint(ckpt)
    assert "dense_1/kernel" in read_checkpoint(ckpt, verify=False)

    (ckpt / ".index").write_bytes(b"not a table" * 10)
    with pytest.raises(CheckpointError, match="bad table magic"):
        read_checkpoint(ckpt)


# --------------------------------------------------------------------------- port vs TF


@needs_musicnn
@pytest.mark.parametrize("model", mn.MODELS)
def test_matches_tensorflow_reference(encoders, model):
    ref = np.load(FIXTURES / "musicnn_reference.npz")
    worst = 0.0
    for clip, audio in clips().items():
        for layer in mn.LAYERS:
            emb, times = encoders(model, layer).timestamps(torch.from_numpy(audio)[None])
            expected = ref[f"{model}/{clip}/{layer}"]
            assert emb.shape == (1, *expected.shape), (clip, layer)
            assert times.shape == (1, expected.shape[0])
            worst = max(worst, _rel(emb[0].numpy(), expected))
            assert _rel(emb[0].numpy(), expected) < TOLERANCE, (clip, layer)
    print(f"{model}: max relative deviation from TF {worst:.2e}")


@needs_musicnn
@pytest.mark.parametrize("model", mn.MODELS)
def test_matches_musicnn_extractor(encoders, model):
    """musicnn's own extractor rounds the mel to float16, so only ~1e-3 agreement is possible."""
    ref = np.load(FIXTURES / "musicnn_reference.npz")[f"{model}/chord/extractor_taggram"]
    emb, _ = encoders(model, "taggram").timestamps(torch.from_numpy(clips()["chord"])[None])
    assert _rel(emb[0].numpy(), ref) < 1e-3


# --------------------------------------------------------------------------- behaviour


@needs_musicnn
def test_loud_input_gives_finite_embeddings(encoders):
    t = np.arange(4 * SR) / SR
    loud = np.sign(np.sin(2 * np.pi * 110 * t)).astype(np.float32)  # full-scale square wave
    mel = mn.librosa.feature.melspectrogram(y=loud, sr=SR, n_fft=512, hop_length=256, n_mels=96)
    with np.errstate(over="ignore"):
        assert np.isinf(10000 * mel.astype(np.float16)).any()  # musicnn 0.1.0 would overflow here
    for layer in mn.LAYERS:
        emb, _ = encoders("MTT_musicnn", layer).timestamps(torch.from_numpy(loud)[None])
        assert torch.isfinite(emb).all()


@needs_musicnn
def test_one_second_clip_gives_one_frame(encoders):
    enc = encoders()
    audio = torch.from_numpy(clips()["clicks"][:SR])[None]
    emb, times = enc.timestamps(audio)
    assert emb.shape == (1, 1, enc.timestamp_embedding_size)
    assert 0.4 < float(times[0, 0]) < 0.6 and torch.isfinite(emb).all()
    assert enc.scene(audio).shape == (1, enc.scene_embedding_size)


@needs_musicnn
def test_later_patches_are_computed_not_repeated(encoders):
    c = clips()
    audio = np.concatenate([c["chord"][: 3 * SR], c["clicks"][: 4 * SR], c["noise"][: 3 * SR]])
    assert audio.size == 10 * SR
    for layer in ("max_pool", "taggram"):
        emb, times = encoders("MTT_musicnn", layer).timestamps(torch.from_numpy(audio)[None])
        assert emb.shape[1] == 3
        np.testing.assert_allclose(times[0].numpy(), (np.array([0, 187, 374]) + 93) * 256 / SR, rtol=1e-6)
        for i in (1, 2):
            assert not torch.allclose(emb[0, i], emb[0, 0], rtol=1e-3, atol=1e-4)


@needs_musicnn
def test_batch_equals_single_clips_and_hop(encoders):
    c = clips()
    batch = torch.from_numpy(np.stack([c["noise"], c["clicks"]]))
    enc = encoders()
    emb, times = enc.timestamps(batch)
    for i in range(2):
        torch.testing.assert_close(emb[i], enc.timestamps(batch[i : i + 1])[0][0])
    hop1 = mn.MusicnnEncoder(hop_seconds=1.0)
    emb1, times1 = hop1.timestamps(batch)
    assert hop1.hop_frames == 62 and emb1.shape[1] == len(range(0, 438 - 187 + 1, 62))
    torch.testing.assert_close(emb1[:, 0], emb[:, 0])


@needs_musicnn
def test_card_and_sizes(encoders):
    enc = encoders("MSD_musicnn", "penultimate")
    card = enc.card()
    assert card.licence.startswith("ISC") and card.sample_rate == 16000
    assert card.scene_embedding_size == card.timestamp_embedding_size == 200
    assert len(card.weights_digest) == 16 and "MSD_musicnn" in card.source
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.training


# --------------------------------------------------------------------------- failures


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(mn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(mn.MissingWeightsError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        mn.MusicnnEncoder()
    with pytest.raises(ImportError):
        mn.MusicnnEncoder()


def test_missing_checkpoint_raises(monkeypatch, tmp_path):
    (tmp_path / "MTT_musicnn").mkdir()
    monkeypatch.setattr(mn, "_package_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="checkpoint file missing"):
        mn.MusicnnEncoder()


def test_unknown_model_and_layer():
    with pytest.raises(UnknownNameError, match="MSD_musicnn"):
        mn.MusicnnEncoder(model="MTT_vgg")
    with pytest.raises(UnknownNameError, match="penultimate"):
        mn.MusicnnEncoder(layer="cnn3")
