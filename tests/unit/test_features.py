"""Summaries, codebooks and the content-addressed feature cache (the front ends pass
``contracts/test_frontends.py``)."""

from __future__ import annotations

import gc
import multiprocessing as mp

import numpy as np
import pytest

from musicbench.errors import ConfigError, DataError
from musicbench.features import Extractor, FeatureCache, FrontEnd, extract_frames
from musicbench.features.summaries import Codebook, add_deltas, dct_2d, dct_time, stats

SR = 22050

def test_summaries():
    frames = np.tile(np.arange(3.0), (50, 1))  # constant over time
    assert np.allclose(stats(frames), [0, 1, 2, 0, 0, 0])
    coef = dct_time(frames, 4).reshape(3, 4)
    assert np.allclose(coef[:, 0], [0, 1, 2]) and np.allclose(coef[:, 1:], 0)  # mean-like scaling
    assert dct_time(frames[:2], 4).shape == (12,)  # shorter than k: zero padded
    assert dct_2d(frames, 2).shape == (4,)
    assert add_deltas(frames, 2).shape == (50, 9)
    assert np.allclose(add_deltas(frames, 1)[:, 3:], 0)
    with pytest.raises(ConfigError):
        add_deltas(frames, 3)


def test_codebook_histograms_are_distributions():
    rng = np.random.default_rng(0)
    train = [rng.normal(size=(40, 4)) + i for i in range(5)]
    book = Codebook(8, seed=0).fit(train)
    h = book.histogram(rng.normal(size=(30, 4)))
    assert h.shape == (8,) and h.sum() == pytest.approx(1.0) and (h >= 0).all()
    again = Codebook(8, seed=0).fit(train)
    assert np.array_equal(book.kmeans_.cluster_centers_, again.kmeans_.cluster_centers_)


def test_extraction_is_cached_and_corrupt_entries_are_rebuilt(tmp_path, synth_fold):
    train = synth_fold[0]
    fes = [FrontEnd("mfcc", train.sample_rate), FrontEnd("rms", train.sample_rate)]
    cache = FeatureCache(tmp_path)
    first = extract_frames(train, fes, cache, n_jobs=1)
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(entries) == 2 * len(train)
    assert all(f.shape[1] == 21 for f in first)
    stamps = [e.stat().st_mtime_ns for e in entries]
    second = extract_frames(train, fes, cache, n_jobs=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert [e.stat().st_mtime_ns for e in entries] == stamps  # served, not rewritten
    victim = entries[0]
    victim.write_bytes(victim.read_bytes()[:-40])  # truncate
    third = extract_frames(train, fes, cache, n_jobs=1)
    assert cache.rebuilt == 1
    assert all(np.array_equal(a, b) for a, b in zip(first, third, strict=True))
    flipped = bytearray(victim.read_bytes())
    flipped[200] ^= 0xFF  # same size, one corrupted byte
    victim.write_bytes(bytes(flipped))
    extract_frames(train, fes, cache, n_jobs=1)
    assert cache.rebuilt == 2


def test_parallel_extraction_equals_serial(tmp_path, synth_fold):
    train = synth_fold[0]
    fes = [FrontEnd("mfcc", train.sample_rate)]
    serial = extract_frames(train, fes, None, n_jobs=1)
    parallel = extract_frames(train, fes, FeatureCache(tmp_path), n_jobs=2)
    # worker processes may differ from the parent in the last float32 bits (SIMD paths)
    assert all(np.allclose(a, b, rtol=1e-5, atol=1e-4) for a, b in zip(serial, parallel, strict=True))
    # the workers' import-time heap is out of the collector's reach (loky collects between
    # tasks); the parent's is not, as freezing it would keep its garbage forever
    from joblib import Parallel, delayed

    from musicbench.features.extract import worker_config

    with worker_config():
        frozen = Parallel(n_jobs=2)(delayed(gc.get_freeze_count)() for _ in range(4))
    assert min(frozen) > 10_000, frozen
    assert gc.get_freeze_count() == 0


def _fill(root, ready):
    from musicbench.tasks import ClipData, get_task

    task = get_task("synth_genre:mini")
    clipset = task.clips()
    data = ClipData(task, clipset.clips, clipset.classes, "multiclass")
    ready.wait()
    extract_frames(data, [FrontEnd("mfcc", data.sample_rate)], FeatureCache(root), n_jobs=1)


def test_two_processes_fill_one_cache_safely(tmp_path, synth_clipset):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    procs = [ctx.Process(target=_fill, args=(tmp_path, ready)) for _ in range(2)]
    for p in procs:
        p.start()
    ready.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = FeatureCache(tmp_path)
    entries = list(tmp_path.rglob("*.npy"))
    assert len(entries) == len(synth_clipset)
    assert not list(tmp_path.rglob("*.tmp"))
    assert all(cache.get(e.stem) is not None for e in entries) and cache.rebuilt == 0


def test_unreadable_tracks_are_all_named(tmp_path, synth_fold):
    from dataclasses import replace

    from musicbench.tasks import ClipData

    train = synth_fold[0]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    clips = [replace(train.clips[0], path=str(bad), track_id="broken-1"),
             replace(train.clips[1], path=str(tmp_path / "gone.wav"), track_id="gone-2"),
             *train.clips[2:4]]
    data = ClipData(train.task, clips, train.classes, train.kind)
    for extractors in ([FrontEnd("mfcc", SR)], [FrontEnd("mfcc", SR), BatchedEnergy()]):
        with pytest.raises(DataError, match="2 track") as exc:
            extract_frames(data, extractors, None, n_jobs=1)
        assert "broken-1" in str(exc.value) and "gone-2" in str(exc.value)


class BatchedEnergy(Extractor):
    """A stand-in for an encoder: in this process, in batches of 4, recording each call."""

    name = "energy"
    process_parallel = False
    batch_size = 4

    def __init__(self, flat: bool = False):
        self.flat, self.calls = flat, []

    def config(self) -> dict:
        return {"hop": 512}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
        energy = np.sqrt(np.mean(frames**2, axis=1), dtype=np.float32)
        return energy if self.flat else energy[:, None]

    def batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(len(audios))
        return super().batch(audios)


def test_in_process_extractor_is_batched_cached_and_combined(tmp_path, synth_fold):
    train = synth_fold[0]
    rms = FrontEnd("rms", train.sample_rate)
    assert rms.process_parallel and isinstance(rms, Extractor)
    cache = FeatureCache(tmp_path)
    alone = extract_frames(train, [rms], cache, n_jobs=2)
    stamps = {e: e.stat().st_mtime_ns for e in tmp_path.rglob("*.npy")}
    energy = BatchedEnergy()
    both = extract_frames(train, [rms, energy], cache, n_jobs=2)
    assert energy.calls == [4] * (len(train) // 4) + ([len(train) % 4] if len(train) % 4 else [])
    assert {e: e.stat().st_mtime_ns for e in stamps} == stamps  # cached rms frames not recomputed
    assert len(list(tmp_path.rglob("*.npy"))) == 2 * len(train)
    for a, b in zip(alone, both, strict=True):
        assert b.shape == (a.shape[0] - 1, 2)  # energy frames are uncentred: one fewer
        np.testing.assert_array_equal(b[:, 0], a[:-1, 0])
    again = BatchedEnergy()
    assert all(np.array_equal(a, b) for a, b in
               zip(both, extract_frames(train, [rms, again], cache), strict=True))
    assert again.calls == []  # every entry served from the cache
    noisy = extract_frames(train, [BatchedEnergy()], None, transform="noise:0")
    assert not np.allclose(noisy[0], both[0][:, 1:])


def test_extractor_output_must_be_frames(synth_fold):
    with pytest.raises(ConfigError, match="extractor energy returned shape"):
        extract_frames(synth_fold[0], [BatchedEnergy(flat=True)], None)
