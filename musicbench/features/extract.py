"""Frame features for a set of clips from any extractors: from the cache, or extracted
(in worker processes, or in batches in this process) and cached."""

from __future__ import annotations

import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from musicbench.audio import ClipPolicy, load_audio
from musicbench.errors import AudioError, ConfigError, DataError
from musicbench.features.cache import Cost, FeatureCache, audio_digest, entry_key
from musicbench.features.extractor import Extractor
from musicbench.features.frontends import warm
from musicbench.runtime import exit_with_parent, progress
from musicbench.tasks import ClipData

JOBS_ENV = "MUSICBENCH_JOBS"
_ON_DISK = np.empty((0, 0), np.float32)  # a cached entry left unread (keep=False)
PARALLEL_MIN = 16  # below this many misses, worker start-up costs more than it saves


def default_jobs() -> int:
    return int(os.environ.get(JOBS_ENV) or os.cpu_count() or 1)


def _load(path: str, track_id: str, policy: ClipPolicy, transform: str | None) -> tuple[np.ndarray, float]:
    """A clip's audio under the clip policy, transformed with its per-clip seed, and the
    seconds decoding took (the transform is the test's, not inference's, and left out)."""
    t0 = time.perf_counter()
    audio = load_audio(path, track_id, policy)
    decode = time.perf_counter() - t0
    if transform:
        from musicbench.augment import apply, seed_for

        audio = apply(transform, audio, policy.sample_rate, seed_for(track_id, transform))
    return audio, decode


def _store(cache: FeatureCache | None, keys: list[str | None], frames: list[np.ndarray],
           costs: list[Cost]) -> None:
    if cache is not None:
        for key, arr, cost in zip(keys, frames, costs, strict=True):
            cache.put(key, arr, cost)


def _compute(path: str, track_id: str, policy: ClipPolicy, extractors: list[Extractor],
             transform: str | None, keys: list[str | None], cache: FeatureCache | None,
             workers: int = 1):
    """Worker: decode once, transform, run the extractors (each timed), store the entries
    and their costs in the cache (off the parent's critical path). Errors come back as
    values."""
    try:
        audio, decode = _load(path, track_id, policy, transform)
    except AudioError as exc:
        return exc
    frames, costs = [], []
    seconds = audio.shape[-1] / policy.sample_rate
    for ex in extractors:
        t0 = time.perf_counter()
        frames.append(ex(audio))
        costs.append(Cost(decode, time.perf_counter() - t0, seconds, ex.device, workers))
    _store(cache, keys, frames, costs)
    return frames


_heap_frozen = False
_seconds = 0.0


def extraction_seconds() -> float:
    """Seconds this process has spent in ``extract_frames``: the runner books them apart
    from fitting and scoring, so the first cell does not look slow for filling the cache."""
    return _seconds


def worker_config():
    """joblib's configuration for extraction workers: loky processes that watch their
    parent from start-up, so a killed run leaves none behind (reused while it holds)."""
    from joblib import parallel_config

    return parallel_config(backend="loky", initializer=exit_with_parent, initargs=(os.getpid(),))


def _compute_in_worker(*args):
    """``_compute`` in a worker process, whose heap of imported modules (librosa, scipy,
    numba: some 200,000 objects) is frozen out of the garbage collector after its first
    clip. Without psutil, loky's workers run a full ``gc.collect()`` at most once a second
    between tasks; over that heap each one takes about 90 ms, a tenth of a 2-worker
    extraction's wall time. Frozen, a collection only visits what the clips allocate."""
    global _heap_frozen
    result = _compute(*args)
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True
    return result


def _in_process(args: list[tuple]):
    """One BLAS thread, as in a worker (joblib limits its workers' threads likewise): the
    parallelism is one process per core, and nested BLAS threads would only compete."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        for a in args:
            yield _compute(*a)


def _in_batches(data: ClipData, extractor: Extractor, rows: list[int], policy: ClipPolicy,
                transform: str | None, keys: list[str | None], cache: FeatureCache | None):
    """In this process, ``extractor.batch_size`` clips per call: (row, frames or the
    ``AudioError``) per clip. Only one batch of audio is held at a time."""
    step = max(1, extractor.batch_size)
    for b in range(0, len(rows), step):
        audios, decodes, done = [], [], []
        for i in rows[b: b + step]:
            clip = data.clips[i]
            try:
                audio, decode = _load(clip.path, clip.track_id, policy, transform)
            except AudioError as exc:
                yield i, exc
                continue
            audios.append(audio)
            decodes.append(decode)
            done.append(i)
        t0 = time.perf_counter()
        frames = extractor.batch(audios) if audios else []
        each = (time.perf_counter() - t0) / max(1, len(audios))  # the batch's time, shared
        for i, arr, audio, decode in zip(done, frames, audios, decodes, strict=True):
            cost = Cost(decode, each, audio.shape[-1] / policy.sample_rate, extractor.device)
            _store(cache, [keys[i]], [arr], [cost])
            yield i, arr


def policy_config(data: ClipData, transform: str | None) -> dict:
    """The clip policy and transform as they enter every cache key of ``data``'s clips."""
    return {**data.task.spec.clip.as_dict(), "transform": transform}


def _digest_or_none(path: str) -> str | None:
    try:
        return audio_digest(path)
    except FileNotFoundError:
        return None


def clip_entry_keys(data: ClipData, extractors: list[Extractor], transform: str | None,
                jobs: int) -> list[list[str] | None]:
    """Per clip, its cache key for each extractor; None where the file is missing."""
    policy_cfg = policy_config(data, transform)
    configs = [ex.cache_config() for ex in extractors]
    with ThreadPoolExecutor(jobs) as pool:  # hashlib and file reads release the GIL
        digests = list(pool.map(_digest_or_none, [c.path for c in data.clips]))
    return [None if sha is None else [entry_key(sha, policy_cfg, c) for c in configs] for sha in digests]


def clip_costs(data: ClipData, extractors: list[Extractor], cache: FeatureCache | None = None,
               transform: str | None = None) -> list[list[Cost | None]]:
    """Per clip of ``data``, the recorded ``Cost`` of each extractor's cache entry (None
    where there is none), read from the entries' cost trailers only."""
    cache = cache or FeatureCache()
    transform = transform if transform is not None else data.deform
    keys = clip_entry_keys(data, extractors, transform, default_jobs())
    return [[None] * len(extractors) if ks is None else [cache.cost(k) for k in ks] for ks in keys]


def _combine(extractors: list[Extractor], parts: list[np.ndarray]) -> np.ndarray:
    for ex, p in zip(extractors, parts, strict=True):
        if p.ndim != 2:
            raise ConfigError(f"extractor {ex.name} returned shape {p.shape}, not [frames, dims]")
    n = min(p.shape[0] for p in parts)  # extractors may differ by a frame at the edges
    return np.hstack([p[:n] for p in parts]) if len(parts) > 1 else parts[0]


def extract_frames(
    data: ClipData,
    extractors: list[Extractor],
    cache: FeatureCache | None = None,
    n_jobs: int | None = None,
    transform: str | None = None,
    keep: bool = True,
) -> list[np.ndarray]:
    """Per clip, the extractors' frames side by side: a [frames, dims] array each.

    ``transform`` (an augmentation spec) is applied to each clip's audio first, with a
    per-clip seed, and is part of the cache key; by default it is ``data.deform``.

    Audio is decoded only for clips missing from the cache, one clip at a time per
    worker, so memory is bounded by the features, not the audio. Extractors that are
    ``process_parallel`` share worker processes (one decode per clip for all of them);
    the others run here in batches. Every unreadable track is named in one error.
    """
    global _seconds
    t0 = time.perf_counter()
    try:
        return _extract_frames(data, extractors, cache, n_jobs, transform, keep)
    finally:
        _seconds += time.perf_counter() - t0


def _extract_frames(data: ClipData, extractors: list[Extractor], cache: FeatureCache | None,
                    n_jobs: int | None, transform: str | None, keep: bool) -> list[np.ndarray]:
    policy = data.task.spec.clip
    transform = transform if transform is not None else data.deform
    out: list[list[np.ndarray | None]] = [[None] * len(extractors) for _ in data.clips]
    keys: list[list[str | None]] = [[None] * len(extractors) for _ in data.clips]
    usable = list(range(len(data)))
    errors: dict[str, str] = {}  # track id -> what went wrong, each track named once
    jobs = n_jobs or default_jobs()
    if cache is not None:
        usable = []
        all_keys = clip_entry_keys(data, extractors, transform, jobs)
        for i, (clip, clip_keys) in enumerate(zip(data.clips, all_keys, strict=True)):
            if clip_keys is None:
                errors[clip.track_id] = str(AudioError(clip.track_id, clip.path, "file is missing", ""))
                continue
            usable.append(i)
            keys[i] = clip_keys
            out[i] = [cache.get(k) if keep else (_ON_DISK if cache.has(k) else None) for k in keys[i]]
    pooled = [j for j, ex in enumerate(extractors) if ex.process_parallel]
    needs = {i: [j for j in pooled if out[i][j] is None] for i in usable}
    todo = [i for i in usable if needs[i]]
    batched = {j: [i for i in usable if out[i][j] is None]
               for j, ex in enumerate(extractors) if not ex.process_parallel}
    desc = f"features {'+'.join(ex.name for ex in extractors)} ({data.task.name})"
    bar = progress(len(todo) + sum(map(len, batched.values())), desc)

    def accept(i: int, js: list[int], res: list[np.ndarray] | AudioError) -> None:
        if isinstance(res, AudioError):
            errors.setdefault(data.clips[i].track_id, str(res))
        else:
            for j, arr in zip(js, res, strict=True):
                out[i][j] = arr if keep else _ON_DISK
        bar.update()

    jobs = min(jobs, max(1, len(todo) // 4))
    parallel = jobs > 1 and len(todo) >= PARALLEL_MIN
    args = [(data.clips[i].path, data.clips[i].track_id, policy, [extractors[j] for j in needs[i]],
             transform, [keys[i][j] for j in needs[i]], cache, jobs if parallel else 1) for i in todo]
    if parallel:
        from joblib import Parallel, delayed

        warm([extractors[j] for j in pooled])
        # about four batches per worker: few round-trips to the parent, still load-balanced
        batch = -(-len(args) // (4 * jobs))
        with worker_config():
            results = Parallel(n_jobs=jobs, return_as="generator", batch_size=batch)(
                delayed(_compute_in_worker)(*a) for a in args
            )
    else:
        results = _in_process(args)
    for i, res in zip(todo, results, strict=True):
        accept(i, needs[i], res)
    for j, rows in batched.items():
        column = [keys[i][j] for i in range(len(data))]
        rows = [i for i in rows if data.clips[i].track_id not in errors]  # already failed to decode
        for i, res in _in_batches(data, extractors[j], rows, policy, transform, column, cache):
            accept(i, [j], res if isinstance(res, AudioError) else [res])
    bar.close()
    if errors:
        messages = list(errors.values())
        raise DataError(
            f"{len(messages)} track(s) of {data.task.ref} could not be used:\n  "
            + "\n  ".join(messages[:20])
            + ("\n  ..." if len(messages) > 20 else "")
        )
    return [_combine(extractors, parts) for parts in out] if keep else []
