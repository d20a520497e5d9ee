"""Memory and time per clip as tasks grow: the data path holds no whole task.

Generated tasks of ``MUSICBENCH_SCALE_SIZES`` clips (default 1000,4000,16000) of 10 s
at 16 kHz, written once into the benchmark's cache (``<cache>/bench-scale``) as one
folder of audio and one CSV manifest per size (a larger task holds the smaller ones'
clips, so their feature-cache entries are shared). For each size, ``scale_job.py`` runs
in a process of its own: first filling the feature cache, then, on the warm cache, one
``cnn2d-small`` epoch over every clip, a probe fit (embeddings of the ``cnn1d-synth``
encoder, mean-pooled, logistic regression) and an ``mfcc-stats-svm`` fit.

Goals, between the two largest sizes, as ratios within one run: peak resident memory
grows at most 1.3x, and time per clip of the data path (the epoch; the summaries of
every clip) stays within 1.2x. The fit of a kernel SVM is superlinear in the clips by
its nature (libsvm), so its time is reported, not gated. ``extra_info`` holds the table
(clips, wall, peak RSS, cache bytes per clip) and its extrapolation to MagnaTagATune and
MTG-Jamendo. A quick run: ``MUSICBENCH_SCALE_SIZES=100,400``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scale_job import WORKLOADS

from musicbench.runtime import cache_root

HERE = Path(__file__).resolve().parent
SIZES = tuple(int(n) for n in os.environ.get("MUSICBENCH_SCALE_SIZES", "1000,4000,16000").split(","))
SAMPLE_RATE, SECONDS, CLASSES = 16000, 10.0, 8
MEMORY_GOAL, TIME_GOAL = 1.3, 1.2
# (clips, seconds per clip) of the datasets the extrapolation is for; MTG-Jamendo's tracks
# are full songs, taken here at four minutes on average
DATASETS = {"MTAT": (26_000, 29.0), "MTG-Jamendo": (55_000, 240.0)}


def write_clips(folder: Path, n: int) -> None:
    """Clips 0..n-1 (those missing): class ``i % CLASSES``, a harmonic tone at the class's
    pitch with a per-clip vibrato, beat and noise, as 16-bit WAV."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SAMPLE_RATE * SECONDS)) / SAMPLE_RATE
    for i in range(n):
        path = folder / f"c{i:06d}.wav"
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        f0 = 110.0 * 2 ** ((i % CLASSES) / 4) * (1 + 0.01 * rng.standard_normal())
        phase = 2 * np.pi * f0 * t + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
        y = sum(np.sin(k * phase) / k for k in range(1, 5))
        y = y * (0.6 + 0.4 * (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0))
        y = 0.2 * y + 0.02 * rng.standard_normal(len(t))
        tmp = path.with_suffix(".tmp")
        sf.write(tmp, y.astype(np.float32), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        tmp.rename(path)


@pytest.fixture(scope="module")
def workspace() -> Path:
    """The benchmark's folder: audio, a manifest and a task spec per size."""
    root = cache_root() / "bench-scale"
    write_clips(root / "audio", max(SIZES))
    for n in SIZES:
        manifest = root / f"scale-{n}.csv"
        if not manifest.exists():
            manifest.write_text("path,label\n" + "".join(f"audio/c{i:06d}.wav,k{i % CLASSES}\n"
                                                        for i in range(n)))
        (root / "datasets").mkdir(exist_ok=True)
        (root / "datasets" / f"scale{n}.toml").write_text(
            f'source = "csv"\nmanifest = "../scale-{n}.csv"\nkind = "multiclass"\n'
            f"[clip]\nsample_rate = {SAMPLE_RATE}\n")
    return root


def job(workspace: Path, phase: str, workload: str, n: int) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "scale_job.py"), phase, workload, f"scale{n}"],
                         cwd=workspace, check=True, capture_output=True, text=True,
                         env={**os.environ, "MUSICBENCH_CACHE": str(cache_root())})
    return json.loads(out.stdout.strip().splitlines()[-1])


def extrapolate(rows: list[dict], cache: dict[str, float]) -> dict:
    """Peak RSS, linear in the clips through the two largest sizes, and the caches' bytes
    (per second of audio, times each dataset's audio)."""
    small, large = rows[-2], rows[-1]
    slope = (large["peak_rss"] - small["peak_rss"]) / (large["clips"] - small["clips"])
    out = {}
    for name, (clips, seconds) in DATASETS.items():
        out[name] = {"peak_rss_gib": round((large["peak_rss"] + max(slope, 0) * (clips - large["clips"]))
                                           / 2 ** 30, 2),
                     "cache_gib": {k: round(v / SECONDS * seconds * clips / 2 ** 30, 2)
                                   for k, v in cache.items()}}
    return out


@pytest.mark.parametrize("workload", WORKLOADS)
def test_memory_and_time_per_clip_stay_flat(benchmark, workspace, workload):
    prepared = [job(workspace, "prepare", workload, n) for n in SIZES]
    rows = []

    def measure():
        rows.clear()
        rows.extend(job(workspace, "measure", workload, n) for n in SIZES)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    cache = prepared[-1]["cache_bytes_per_clip"]
    memory = rows[-1]["peak_rss"] / rows[-2]["peak_rss"]
    per_clip = [r["work_s"] / r["clips"] for r in rows]
    time_ratio = per_clip[-1] / per_clip[-2]
    table = [{"clips": r["clips"], "wall_s": round(r["load_s"] + r["fit_s"] + r.get("predict_s", 0), 2),
              "work_s_per_clip": round(w, 6), "fit_s": round(r["fit_s"], 2),
              "peak_rss_mib": round(r["peak_rss"] / 2 ** 20, 1), "extract_s": round(p["extract_s"], 2)}
             for r, p, w in zip(rows, prepared, per_clip, strict=True)]
    benchmark.extra_info.update(
        table=table,
        cache_bytes_per_clip={k: round(v) for k, v in cache.items()},
        memory_ratio=round(memory, 3), time_ratio=round(time_ratio, 3),
        goals={"memory": MEMORY_GOAL, "time": TIME_GOAL}, extrapolation=extrapolate(rows, cache))
    print(json.dumps({workload: benchmark.extra_info}, indent=1))
    assert memory <= MEMORY_GOAL, f"{workload}: peak RSS grew {memory:.2f}x from {rows[-2]['clips']} clips"
    assert time_ratio <= TIME_GOAL, f"{workload}: time per clip grew {time_ratio:.2f}x"
