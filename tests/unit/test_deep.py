"""The deep family: torch front ends against librosa, cached inputs, the shared trainer, the CNNs."""

from __future__ import annotations

import glob

import numpy as np
import pytest
import torch
from sklearn.base import clone

from musicbench.errors import ConfigError
from musicbench.features.frontends import FrontEnd
from musicbench.protocol.metrics import evaluate
from musicbench.systems import build_system
from musicbench.systems.deep.frontend import CQT, LogMel
from musicbench.systems.deep.inputs import DeepInput, FeatureBank, clip_inputs
from musicbench.systems.deep.trainer import TrainConfig, Trainer, eval_chunks, resolve_device
from musicbench.tasks import ClipData

from helpers import SHARED, needs_shared

SR = 22050
TINY = dict(width=8, n_blocks=3, chunk_seconds=1.0, max_epochs=3, batch_size=8)
SMALL_PRESETS = ("cnn1d-small", "cnn2d-small", "samplecnn-small", "harmoniccnn-small")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks gain nothing from a second thread, and spin-waiting on a shared
    2-core machine makes them several times slower; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tones(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Chirp, partials, clicks and noise: energy everywhere a spectrogram looks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * (100 * t + 400 * t**2))
    for f in (110.0, 220.0, 330.0, 1760.0):
        y += 0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
    y[:: SR // 4] += 0.8
    return (y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _db_error(ref: np.ndarray, out: np.ndarray, floor_db: float) -> np.ndarray:
    """|difference| in dB over the bins within ``floor_db`` of the loudest one."""
    assert ref.shape == out.shape
    return np.abs(ref - out)[ref > ref.max() - floor_db]


# Log-mel: the same STFT and filter bank in float32, so agreement is to rounding error.
LOGMEL_TOL_DB = 1e-3
# CQT: librosa filters on a resampled signal, we filter at the full rate, so the two agree
# to resampling error, which shows in the noise floor: median and 95th percentile of the
# dB difference over the bins within 40 dB of the peak.
CQT_MEDIAN_DB, CQT_P95_DB = 0.1, 1.0


def _check_logmel(y: np.ndarray, n_fft: int = 1024, hop: int = 512, n_mels: int = 64) -> None:
    ref = FrontEnd("logmel", SR, n_fft=n_fft, hop_length=hop, n_mels=n_mels)(y).T
    out = LogMel(SR, n_fft, hop, n_mels)(torch.from_numpy(y)).numpy()
    assert _db_error(ref, out, 80.0).max() < LOGMEL_TOL_DB


def _check_cqt(y: np.ndarray) -> None:
    ref = FrontEnd("cqt", SR, hop_length=512, n_bins=84)(y).T
    out = CQT(SR, 512, 84, 32.70)(torch.from_numpy(y)).numpy()
    err = _db_error(ref, out, 40.0)
    assert np.median(err) < CQT_MEDIAN_DB and np.percentile(err, 95) < CQT_P95_DB


@pytest.mark.parametrize("n_fft,hop,n_mels", [(1024, 512, 64), (2048, 256, 128)])
def test_logmel_matches_librosa_on_generated_audio(n_fft, hop, n_mels):
    _check_logmel(_tones(), n_fft, hop, n_mels)


def test_logmel_batch_equals_one_clip_at_a_time():
    batch = np.stack([_tones(2.0, seed) for seed in range(3)])
    fe = LogMel(SR, 1024, 512, 64)
    together = fe(torch.from_numpy(batch))
    for i in range(3):
        torch.testing.assert_close(together[i], fe(torch.from_numpy(batch[i])), atol=1e-3, rtol=0)


def test_cqt_matches_librosa_on_generated_audio():
    _check_cqt(_tones(4.0))


def _real_audio() -> list[np.ndarray]:
    import librosa

    files = sorted(glob.glob(str(SHARED / "data" / "mridangam_stroke_1.5" / "*" / "*.wav")))[:3]
    files += sorted(glob.glob(str(SHARED / "mirdata_sample" / "resources" / "gtzan_genre" / "**"
                                  / "*.wav"), recursive=True))[:1]
    assert files, "no real audio found in ../shared"
    return [librosa.load(f, sr=SR, duration=8.0)[0] for f in files]


@needs_shared
def test_logmel_matches_librosa_on_real_audio():
    for y in _real_audio():
        _check_logmel(y)


@needs_shared
def test_cqt_matches_librosa_on_real_music():
    _check_cqt(_real_audio()[-1])  # the GTZAN excerpt: strokes are too short for a CQT's long filters


def test_missing_device_is_a_clear_error():
    with pytest.raises(ConfigError, match="must be cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_missing_device_fails_fit_before_training(synth_fold):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    train, valid, _ = synth_fold
    with pytest.raises(ConfigError, match="cuda"):
        build_system("cnn1d-small", device="cuda", **TINY).fit(train, valid)


def test_eval_chunks_cover_every_clip_to_its_end():
    rows, starts = eval_chunks(np.array([100, 10, 250]), length=40, hop=30)
    for i, n in enumerate([100, 10, 250]):
        s = starts[rows == i]
        assert s[0] == 0 and s[-1] == max(n - 40, 0)
        assert np.all(np.diff(s) <= 30)


def test_eval_chunks_at_most_some_evenly_spaced_per_clip():
    rows, starts = eval_chunks(np.array([100, 10, 250]), length=40, hop=30, most=3)
    assert starts[rows == 0].tolist() == [0, 30, 60]  # 3 chunks already: unchanged
    assert starts[rows == 1].tolist() == [0]
    assert starts[rows == 2].tolist() == [0, 105, 210]  # 8 hop-spaced chunks: 3 from start to end


def test_valid_chunks_changes_validation_only(synth_fold):
    """Scoring fewer validation chunks changes the validation loss, not the training nor
    the test scores (one epoch: the kept weights are the same)."""
    train, valid, test = synth_fold
    runs = [build_system("cnn1d-small", **{**TINY, "max_epochs": 1, "valid_chunks": n}).fit(train, valid)
            for n in (0, 1)]
    every, one = (r.training_report()["history"][0] for r in runs)
    assert every["train_loss"] == one["train_loss"] and every["valid_loss"] != one["valid_loss"]
    np.testing.assert_array_equal(runs[0].predict_scores(test), runs[1].predict_scores(test))


def test_feature_bank_cuts_silence_past_the_end():
    clips = [np.arange(1, 6, dtype=np.float32)[:, None] * [1, 10], np.ones((8, 2), np.float32)]
    bank = FeatureBank(clips, torch.device("cpu"), pad_value=-100.0)
    out = bank.cut(np.array([0, 1]), np.array([3, 6]), 4).numpy()
    np.testing.assert_array_equal(out[0], [[4, 5, -100, -100], [40, 50, -100, -100]])
    np.testing.assert_array_equal(out[1], [[1, 1, -100, -100], [1, 1, -100, -100]])


def _cache_files(root) -> set:
    return set(root.rglob("*.npy"))


@pytest.mark.parametrize("kind", ["logmel", "cqt", "wave"])
def test_inputs_are_computed_once_and_read_back_from_the_cache(kind, synth_fold, tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path))
    train = synth_fold[0]
    spec = DeepInput(kind, train.sample_rate, 16000 if kind == "wave" else train.sample_rate)
    first = clip_inputs(train, spec)
    files = _cache_files(tmp_path)
    assert len(files) == len(train)
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = clip_inputs(train, spec)
    assert {f: f.stat().st_mtime_ns for f in _cache_files(tmp_path)} == stamps  # nothing rewritten
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    if kind == "wave":  # resampled to the network's rate
        assert abs(len(first[0]) - round(len(train.audio(0)) * 16000 / train.sample_rate)) <= 1


def test_cached_logmel_equals_the_front_end_on_a_chunk():
    """A chunk cut from a clip's cached log-mel equals the front end run on that chunk's
    audio, away from the chunk's edges (where centred frames see the neighbouring audio)."""
    y = _tones(4.0)
    spec = DeepInput("logmel", SR, SR, n_fft=1024, hop_length=512, n_mels=64)
    whole = spec(y).T
    start, frames = 20, spec.frames(SR)
    chunk = spec.module()(torch.from_numpy(y[start * 512: start * 512 + SR])[None])[0].numpy()
    assert chunk.shape[1] == frames
    np.testing.assert_allclose(chunk[:, 2:-2], whole[:, start + 2: start + frames - 2], atol=1e-3)


def test_several_chunks_per_clip_per_epoch(synth_fold):
    train, valid, _ = synth_fold
    system = build_system("cnn2d-small", **{**TINY, "max_epochs": 1, "chunks_per_clip": 3}).fit(train, valid)
    assert system.training_report()["history"][0]["train_chunks"] == 3 * len(train)


@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_preset_fits_and_scores_probabilities(name, synth_fold):
    train, valid, test = synth_fold
    system = build_system(name, **{**TINY, "max_epochs": 2})
    system.fit(train, valid)
    scores = system.predict_scores(test.without_labels())
    assert scores.shape == (len(test), len(test.classes))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    report = system.training_report()
    assert [h["epoch"] for h in report["history"]] == [1, 2]
    keys = {"train_loss", "valid_loss", "valid_accuracy", "lr", "train_chunks_per_s"}
    assert keys <= set(report["history"][0])
    assert report["best_epoch"] in (1, 2) and report["n_parameters"] > 0


@pytest.fixture(scope="module")
def fitted(synth_fold):
    """A tiny cnn1d fitted on the mini fold, shared by the tests that only inspect it."""
    train, valid, _ = synth_fold
    return build_system("cnn1d-small", **{**TINY, "max_epochs": 5, "patience": 10, "augment_p": 1.0}).fit(
        train, valid)


def test_same_seed_same_scores_on_cpu(synth_fold, fitted):
    train, valid, test = synth_fold
    again, other = (clone(fitted).set_params(seed=s).fit(train, valid) for s in (0, 1))
    np.testing.assert_array_equal(fitted.predict_scores(test), again.predict_scores(test))
    assert not np.allclose(fitted.predict_scores(test), other.predict_scores(test))


def test_bfloat16_autocast_on_cpu_is_reproducible_and_really_in_bfloat16(synth_fold, fitted):
    """``amp = "bf16"`` trains under bfloat16 autocast on CPU (scores differ from the
    float32 fit of the same seed), and the same seed still gives the same scores."""
    train, valid, test = synth_fold
    runs = [clone(fitted).set_params(amp="bf16").fit(train, valid) for _ in range(2)]
    scores = [r.predict_scores(test) for r in runs]
    np.testing.assert_array_equal(scores[0], scores[1])
    assert np.allclose(scores[0].sum(axis=1), 1, atol=1e-5)
    assert not np.allclose(scores[0], fitted.predict_scores(test))


def test_cnn_learns_synth_genre_far_above_chance(synth_fold):
    train, valid, test = synth_fold
    system = build_system("cnn1d-small", max_epochs=12, patience=12).fit(train, valid)
    acc = evaluate("multiclass", test.y, system.predict_scores(test), test.classes)["accuracy"]
    assert acc >= 0.6, f"accuracy {acc:.2f} (chance {1 / len(test.classes):.2f})"


def test_best_validation_epoch_is_kept(synth_fold, fitted):
    _, valid, _ = synth_fold
    report = fitted.training_report()
    keys = [(h["valid_accuracy"], -h["valid_loss"]) for h in report["history"]]
    assert len(keys) == 5 and report["best_epoch"] == 1 + keys.index(max(keys))
    kept = fitted.predict_scores(valid)
    best = report["history"][report["best_epoch"] - 1]
    assert evaluate("multiclass", valid.y, kept, valid.classes)["accuracy"] == best["valid_accuracy"]


def test_early_stopping_ends_a_run_that_stopped_improving(synth_fold):
    train, valid, _ = synth_fold
    # lr=0: the weights never move, so nothing after the first epochs can beat them for long
    system = build_system("cnn1d-small", **{**TINY, "lr": 0.0, "max_epochs": 20, "patience": 1})
    system.fit(train, valid)
    report = system.training_report()
    assert len(report["history"]) < 20
    assert len(report["history"]) - report["best_epoch"] == 2


def _multilabel(part: ClipData) -> ClipData:
    """Genre tags plus a 'driven' tag shared by two genres: a multilabel task."""
    y = np.zeros((len(part), len(part.classes) + 1), dtype=np.int64)
    y[np.arange(len(part)), part.y] = 1
    y[:, -1] = np.isin(np.array(part.classes)[part.y], ["rock", "electro"])
    return ClipData(part.task, part.clips, [*part.classes, "driven"], "multilabel", y)


def test_multilabel_uses_independent_sigmoids(synth_fold):
    train, valid, test = (_multilabel(p) for p in synth_fold)
    system = build_system("cnn1d-small", **{**TINY, "max_epochs": 6}).fit(train, valid)
    scores = system.predict_scores(test)
    assert scores.shape == (len(test), 7)
    assert np.all((scores > 0) & (scores < 1))
    assert not np.allclose(scores.sum(axis=1), 1.0)
    assert "valid_roc_auc_macro" in system.training_report()["history"][-1]
    assert evaluate("multilabel", test.y, scores, test.classes)["roc_auc_macro"] > 0.7


def test_epoch_callback_sees_every_epoch_and_pruning_propagates(synth_fold):
    import optuna

    train, valid, _ = synth_fold
    seen = []

    def callback(epoch, score):
        seen.append((epoch, score))
        if epoch == 2:
            raise optuna.TrialPruned()

    system = build_system("cnn1d-small", **{**TINY, "max_epochs": 5})
    with pytest.raises(optuna.TrialPruned):
        system.fit(train, valid, epoch_callback=callback)
    assert [e for e, _ in seen] == [1, 2]
    assert all(0.0 <= s <= 1.0 for _, s in seen)


def _trainer(augment: str | None, spec: DeepInput, seed: int = 0) -> Trainer:
    net = torch.nn.Linear(1, 1)
    cfg = TrainConfig(chunk=spec.frames(SR), eval_hop=1, hop=spec.hop, chunk_samples=SR, batch_size=4,
                      augment=augment, augment_p=1.0, seed=seed, sample_rate=SR)
    return Trainer(net, cfg, torch.device("cpu"), "multiclass", ["a", "b"], spec.module())


def _first_batch(trainer: Trainer, spec: DeepInput, waves: list[np.ndarray], epoch: int) -> np.ndarray:
    rng = np.random.default_rng(trainer.cfg.seed)
    bank = FeatureBank([spec(w) for w in waves], torch.device("cpu"), spec.pad_value)
    audio = FeatureBank([w[:, None] for w in waves], torch.device("cpu"))
    batches = trainer.training_batches(bank, [f"t{i}" for i in range(len(waves))], epoch, rng, audio)
    return next(batches)[0].numpy()


@pytest.mark.parametrize("kind", ["logmel", "wave"])
def test_augmentation_changes_training_chunks_deterministically(kind):
    waves = [_tones(2.0, s) for s in range(4)]
    spec = DeepInput(kind, SR, SR)
    clean = _first_batch(_trainer(None, spec), spec, waves, 1)
    noisy = _first_batch(_trainer("noise+eq", spec), spec, waves, 1)
    assert clean.shape == noisy.shape == (4, 1 if kind == "wave" else 64, spec.frames(SR))
    assert not np.allclose(clean, noisy)
    np.testing.assert_array_equal(noisy, _first_batch(_trainer("noise+eq", spec), spec, waves, 1))
    again = _first_batch(_trainer("noise+eq", spec), spec, waves, 2)
    assert not np.allclose(noisy, again)  # a new draw every epoch
    stretched = _first_batch(_trainer("stretch:1.2", spec), spec, waves, 1)
    assert stretched.shape == clean.shape and not np.allclose(stretched, clean)


def test_fit_applies_train_augment(synth_fold, fitted):
    train, valid, test = synth_fold
    augmented = ClipData(train.task, train.clips, train.classes, train.kind, train.y, augment="noise:0")
    aug = clone(fitted).fit(augmented, valid)
    assert not np.allclose(fitted.predict_scores(test), aug.predict_scores(test))


def test_deformed_test_data_changes_scores(synth_fold, fitted):
    _, _, test = synth_fold
    deformed = ClipData(test.task, test.clips, test.classes, test.kind, None, deform="noise:0")
    assert not np.allclose(fitted.predict_scores(test), fitted.predict_scores(deformed))


def test_bad_parameters_are_config_errors():
    for bad in ({"model": "resnet"}, {"frontend": "mfcc"}, {"eval_overlap": 1.0}, {"batch_size": 1},
                {"augment_p": 1.5}, {"chunk_seconds": 0.0}, {"max_epochs": 0}, {"chunks_per_clip": 0},
                {"channels": [32, 0]}, {"sample_rate": -1}, {"torch_compile": "yes"}, {"amp": "fp8"},
                {"valid_chunks": -1}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))}="):
            build_system("cnn2d-small", **bad)


def _compiled_or_eager_scores(compile_: bool) -> np.ndarray:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3), torch.nn.AdaptiveMaxPool1d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 2))
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((20, 4)).astype(np.float32) for _ in range(8)]
    bank = FeatureBank(clips, torch.device("cpu"))
    cfg = TrainConfig(chunk=10, eval_hop=5, batch_size=4, max_epochs=2, compile=compile_)
    trainer = Trainer(net, cfg, torch.device("cpu"), "multiclass", ["a", "b"])
    trainer.fit(bank, np.array([0, 1] * 4), [str(i) for i in range(8)])
    return trainer.predict(bank)


def test_torch_compile_trains_like_eager():
    np.testing.assert_allclose(_compiled_or_eager_scores(True), _compiled_or_eager_scores(False), atol=1e-4)
