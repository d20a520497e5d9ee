"""Embedding throughput of every bundled encoder through the extractor seam, and the cache.

Each encoder embeds 16 four-second synthetic clips (resampling included, weights loaded
beforehand): clips/s and x real time go to ``extra_info`` with the peak memory — the
peak resident set of a fresh process that loads the encoder and embeds the clips once
(``ru_maxrss``; interpreter, torch and weights included) and the peak of Python-level
allocations during one extraction (``tracemalloc``; torch's own buffers are not traced).
The cached rerun reads every embedding back from the feature cache and must be >= 10x
faster than computing it.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc

import numpy as np
import pytest

from musicbench.encoders import encoder_names
from musicbench.encoders.extractor import EncoderExtractor
from musicbench.features import FeatureCache, extract_frames
from musicbench.tasks import ClipData, get_task

N_CLIPS = 16


@pytest.fixture(scope="module")
def clips() -> ClipData:
    task = get_task("synth_genre")
    clipset = task.clips()
    return ClipData(task, clipset.clips[:N_CLIPS], clipset.classes, task.spec.kind)


def seconds_of_audio(data: ClipData) -> float:
    import soundfile as sf

    return sum(sf.info(c.path).duration for c in data.clips)


def _embed_and_peak(name: str, device: str) -> float:
    """In a fresh process: embed the clips with one encoder; its peak RSS in MB."""
    task = get_task("synth_genre")
    clipset = task.clips()
    data = ClipData(task, clipset.clips[:N_CLIPS], clipset.classes, task.spec.kind)
    extract_frames(data, [EncoderExtractor(name, data.sample_rate, device)], None)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def peak_rss_mb(name: str, device: str) -> float:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_embed_and_peak, name, device).result()


@pytest.mark.parametrize("name", encoder_names())
def test_encoder_throughput_cold(benchmark, clips, bench_device, name):
    ex = EncoderExtractor(name, clips.sample_rate, bench_device)
    ex(clips.audio(0))  # load the weights outside the timings
    tracemalloc.start()
    extract_frames(clips, [ex], None)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    frames = benchmark.pedantic(extract_frames, args=(clips, [ex], None), rounds=2, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        encoder=name, device=bench_device, clips=len(clips), clips_per_s=round(len(clips) / mean, 2),
        x_realtime=round(seconds_of_audio(clips) / mean, 1),
        peak_rss_mb=round(peak_rss_mb(name, bench_device), 1),
        traced_peak_mb=round(traced_peak / 2**20, 1), dims=int(frames[0].shape[1]),
    )
    assert all(np.isfinite(f).all() and f.shape[1] == ex.encoder.timestamp_embedding_size for f in frames)


def test_cached_rerun_against_cold(benchmark, clips, bench_device, tmp_path):
    ex = EncoderExtractor("musicnn-mtt", clips.sample_rate, bench_device)
    ex(clips.audio(0))
    cache = FeatureCache(tmp_path)
    t0 = time.perf_counter()
    cold = extract_frames(clips, [ex], cache)
    cold_seconds = time.perf_counter() - t0
    warm = benchmark.pedantic(extract_frames, args=(clips, [ex], cache), rounds=3, iterations=1)
    cached_seconds = benchmark.stats.stats.mean
    ratio = cold_seconds / cached_seconds
    benchmark.extra_info.update(cold_seconds=round(cold_seconds, 3), cached_seconds=round(cached_seconds, 4),
                                speedup=round(ratio, 1), clips=len(clips))
    assert all(np.array_equal(a, b) for a, b in zip(cold, warm, strict=True))
    assert ratio >= 10, f"cached rerun only {ratio:.1f}x faster than computing the embeddings"
