"""Frame features for a set of clips: from the cache, or extracted in parallel and cached."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from musicbench.audio import ClipPolicy, load_audio
from musicbench.augment import seed_for
from musicbench.errors import AudioError, DataError
from musicbench.features.cache import FeatureCache, audio_digest, entry_key
from musicbench.features.frontends import FrontEnd
from musicbench.tasks import ClipData

JOBS_ENV = "MUSICBENCH_JOBS"
PARALLEL_MIN = 16  # below this many misses, worker start-up costs more than it saves


def default_jobs() -> int:
    return int(os.environ.get(JOBS_ENV) or os.cpu_count() or 1)


def _compute(path: str, track_id: str, policy: ClipPolicy, frontends: list[FrontEnd],
             transform: str | None, keys: list[str], cache: FeatureCache | None):
    """Worker: decode once, transform, run every front end, store the entries in the cache
    (off the parent's critical path). Errors come back as values."""
    try:
        audio = load_audio(path, track_id, policy)
    except AudioError as exc:
        return exc
    if transform:
        from musicbench.augment import apply

        audio = apply(transform, audio, policy.sample_rate, seed_for(track_id, transform))
    frames = [fe(audio) for fe in frontends]
    if cache is not None:
        for key, arr in zip(keys, frames, strict=True):
            cache.put(key, arr)
    return frames


_heap_frozen = False


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


def _digest_or_none(path: str) -> str | None:
    try:
        return audio_digest(path)
    except FileNotFoundError:
        return None


def _combine(parts: list[np.ndarray]) -> np.ndarray:
    n = min(p.shape[0] for p in parts)  # front ends may differ by a frame at the edges
    return np.hstack([p[:n] for p in parts]) if len(parts) > 1 else parts[0]


def extract_frames(
    data: ClipData,
    frontends: list[FrontEnd],
    cache: FeatureCache | None = None,
    n_jobs: int | None = None,
    transform: str | None = None,
) -> list[np.ndarray]:
    """Per clip, the front ends' frames side by side: a [frames, dims] array each.

    ``transform`` (an augmentation spec) is applied to each clip's audio first, with a
    per-clip seed, and is part of the cache key; by default it is ``data.deform``.

    Audio is decoded only for clips missing from the cache, one clip at a time per
    worker, so memory is bounded by the features, not the audio. Every unreadable track
    is named in one error.
    """
    policy = data.task.spec.clip
    transform = transform if transform is not None else data.deform
    policy_cfg = {**policy.as_dict(), "transform": transform}
    configs = [fe.config() for fe in frontends]
    out: list[list[np.ndarray] | None] = [None] * len(data)
    keys: list[list[str] | None] = [[] for _ in data.clips]  # no cache: nothing to look up
    errors: list[str] = []
    jobs = n_jobs or default_jobs()
    if cache is not None:
        with ThreadPoolExecutor(jobs) as pool:  # hashlib and file reads release the GIL
            digests = list(pool.map(_digest_or_none, [c.path for c in data.clips]))
        for i, (clip, sha) in enumerate(zip(data.clips, digests, strict=True)):
            if sha is None:
                errors.append(str(AudioError(clip.track_id, clip.path, "file is missing", "")))
                keys[i] = None
                continue
            keys[i] = [entry_key(sha, policy_cfg, c) for c in configs]
            hits = [cache.get(k) for k in keys[i]]
            if all(h is not None for h in hits):
                out[i] = hits
    todo = [i for i in range(len(data)) if out[i] is None and keys[i] is not None]
    jobs = min(jobs, max(1, len(todo) // 4))
    args = [(data.clips[i].path, data.clips[i].track_id, policy, frontends, transform, keys[i], cache)
            for i in todo]
    if jobs > 1 and len(todo) >= PARALLEL_MIN:
        from joblib import Parallel, delayed

        # about four batches per worker: few round-trips to the parent, still load-balanced
        batch = -(-len(args) // (4 * jobs))
        results = Parallel(n_jobs=jobs, return_as="generator", batch_size=batch)(
            delayed(_compute_in_worker)(*a) for a in args
        )
    else:
        results = _in_process(args)
    desc = f"features {'+'.join(fe.name for fe in frontends)} ({data.task.name})"
    for i, res in zip(todo, tqdm(results, total=len(todo), desc=desc, disable=None), strict=True):
        if isinstance(res, AudioError):
            errors.append(str(res))
            continue
        out[i] = res
    if errors:
        raise DataError(
            f"{len(errors)} track(s) of {data.task.ref} could not be used:\n  "
            + "\n  ".join(errors[:20])
            + ("\n  ..." if len(errors) > 20 else "")
        )
    return [_combine(parts) for parts in out]
