"""The memory-bounded data path: cached entries read per clip, equal to what the whole
arrays give, and batches that do not depend on how many loader workers cut them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from musicbench.errors import ConfigError
from musicbench.features import FeatureCache, FrontEnd, extract_frames
from musicbench.features.cache import CachedArray, Cost
from musicbench.features.lazy import ClipFrames, open_frames
from musicbench.features.summaries import Codebook, sample_frames
from musicbench.systems import build_system
from musicbench.systems.deep.contrastive import bank_digest
from musicbench.systems.deep.inputs import FeatureBank
from musicbench.systems.deep.loader import WORKERS_ENV
from musicbench.systems.deep.trainer import TrainConfig, Trainer
from musicbench.systems.density import _moments


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_cached_array_reads_only_the_rows_asked_for(tmp_path, order):
    cache = FeatureCache(tmp_path)
    whole = np.asarray(np.arange(60, dtype=np.float32).reshape(20, 3), order=order)
    cache.put("ab" * 20, whole, Cost(decode=0.0, compute=0.0, audio=1.0))
    entry = cache.open("ab" * 20)
    assert isinstance(entry, CachedArray) and (len(entry), entry.ndim) == (20, 2)
    np.testing.assert_array_equal(entry[5:9], whole[5:9])
    np.testing.assert_array_equal(entry[18:30], whole[18:])  # past the end: what numpy gives
    np.testing.assert_array_equal(np.asarray(entry), whole)
    assert entry[3:4].flags.writeable  # a copy, not a view of the file


def test_a_corrupt_entry_is_dropped_on_opening_and_rebuilt(tmp_path, synth_fold):
    train = synth_fold[0]
    fes = [FrontEnd("mfcc", train.sample_rate)]
    cache = FeatureCache(tmp_path)
    whole = extract_frames(train, fes, cache, n_jobs=1)
    victim = sorted(tmp_path.rglob("*.npy"))[0]
    flipped = bytearray(victim.read_bytes())
    flipped[200] ^= 0xFF  # one byte of the array (after its 128-byte header): same size, wrong digest
    victim.write_bytes(bytes(flipped))
    frames = open_frames(train, fes, cache)
    assert cache.rebuilt == 1
    assert all(np.array_equal(a, b) for a, b in zip(whole, frames, strict=True))


def test_clip_frames_equal_the_extracted_arrays_clip_by_clip(tmp_path, synth_fold):
    train = synth_fold[0]
    fes = [FrontEnd("mfcc", train.sample_rate), FrontEnd("rms", train.sample_rate)]
    cache = FeatureCache(tmp_path)
    whole = extract_frames(train, fes, cache, n_jobs=1)
    frames = open_frames(train, fes, cache)
    assert isinstance(frames, ClipFrames) and len(frames) == len(whole)
    assert all(isinstance(e, CachedArray) for col in frames.columns for e in col)  # nothing read yet
    assert frames.lengths.tolist() == [len(f) for f in whole]
    assert all(np.array_equal(a, b) for a, b in zip(whole, frames, strict=True))
    both = (frames + frames).map(lambda f: f * 2)
    assert len(both) == 2 * len(whole) and np.array_equal(both[-1], 2 * whole[-1])


@pytest.mark.parametrize("rows", [None, [0, 2, 3]])
def test_sampled_frames_are_the_rows_stacking_then_choosing_gives(rows):
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(int(n), 3)) for n in rng.integers(5, 40, size=6)]
    picked = [clips[r] for r in (rows if rows is not None else range(len(clips)))]
    stacked = np.vstack(picked)
    expected = stacked[np.random.default_rng(7).choice(len(stacked), 30, replace=False)]
    np.testing.assert_array_equal(sample_frames(clips, 30, np.random.default_rng(7), rows), expected)
    np.testing.assert_array_equal(sample_frames(clips, 10_000, np.random.default_rng(7), rows), stacked)
    book = Codebook(4, seed=0, max_frames=30)
    assert book.fit(clips).mean_.shape == (3,)


def test_streamed_moments_equal_those_of_the_stacked_frames():
    rng = np.random.default_rng(2)
    clips = [rng.normal(3.0, 2.0, size=(int(n), 4)) for n in rng.integers(1, 50, size=9)]
    mean, std = _moments(clips)
    np.testing.assert_allclose(mean, np.vstack(clips).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, np.vstack(clips).std(axis=0), rtol=1e-12)


def test_a_deep_bank_leaves_the_inputs_on_disk_and_cuts_what_the_arrays_give(synth_fold):
    train = synth_fold[0]
    system = build_system("cnn2d-small")
    spec = system.input_spec(train.sample_rate)
    lazy = system.bank(train, spec, torch.device("cpu"))
    assert all(isinstance(a, CachedArray) for a in lazy.arrays)
    whole = [np.asarray(a) for a in lazy.arrays]
    eager = FeatureBank(whole, torch.device("cpu"), spec.pad_value)
    rows, starts = np.array([0, 3, 5, 5]), np.array([0, 10, 100, 2 * len(whole[5])])
    assert torch.equal(lazy.cut(rows, starts, 40), eager.cut(rows, starts, 40))
    # the digest of cached pretraining is the one of the stacked, silence-padded bank
    longest = max(len(a) for a in whole)
    stacked = np.full((len(whole), whole[0].shape[1], longest), spec.pad_value, np.float32)
    for i, a in enumerate(whole):
        stacked[i, :, : len(a)] = a.T
    ids = [c.track_id for c in train.clips]
    h = hashlib.sha1("\n".join(ids).encode())
    h.update(stacked.tobytes())
    assert bank_digest(lazy, ids) == h.hexdigest()[:16]


def _fit_scores(monkeypatch, workers: str) -> np.ndarray:
    monkeypatch.setenv(WORKERS_ENV, workers)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3), torch.nn.Dropout(0.5), torch.nn.AdaptiveMaxPool1d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 2))
    rng = np.random.default_rng(0)
    bank = FeatureBank([rng.standard_normal((int(n), 4)).astype(np.float32) for n in rng.integers(8, 30, 10)],
                       torch.device("cpu"))
    trainer = Trainer(net, TrainConfig(chunk=10, eval_hop=5, batch_size=4, max_epochs=2),
                      torch.device("cpu"), "multiclass", ["a", "b"])
    trainer.fit(bank, np.array([0, 1] * 5), [str(i) for i in range(10)])
    return trainer.predict(bank)


def test_loader_workers_change_nothing_but_speed(monkeypatch):
    np.testing.assert_array_equal(_fit_scores(monkeypatch, "0"), _fit_scores(monkeypatch, "2"))


def test_a_bad_loader_setting_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(ConfigError, match=f"{WORKERS_ENV}='many'"):
        Trainer(torch.nn.Linear(1, 1), TrainConfig(chunk=1, eval_hop=1), torch.device("cpu"), "multiclass",
                ["a", "b"])
