"""Throughput of contrastive pretraining (clips/s, x real time), on CPU and on CUDA.

Run with ``pytest bench/test_pretrain_bench.py --benchmark-only``. The clips are every clip
of the embedded ``synth_genre:mini`` task (72 clips of 3 s); the backbone is
``cnn1d-small``. One pretraining epoch (two views per clip, NT-Xent) is timed against one
supervised epoch of the same network on the same clips, measured in the same run: a
contrastive step runs the network on two views and computes them from audio (the views'
transforms and the front end, where the supervised epoch reads cached inputs), so it
costs more, but not more than ``MAX_RATIO`` times a supervised epoch with the cheap views
(crop, gain, polarity). The default views add seeded EQ and noise on the CPU; their cost
is reported beside it. On CPU pretraining runs on one torch thread, as
``pretrain_backbone`` runs it.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from musicbench.systems import build_system
from musicbench.systems.deep.contrastive import DEFAULT_VIEWS, Pretrainer, torch_threads
from musicbench.systems.deep.trainer import Trainer
from musicbench.tasks import ClipData

MAX_RATIO = 8.0
CHEAP_VIEWS = ("crop", "gain", "polarity")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (CPU-only torch or no GPU)"))]


@pytest.fixture(scope="module")
def clips() -> ClipData:
    from musicbench.tasks import get_task

    clipset = get_task("synth_genre:mini").clips()
    return clipset.part([c.track_id for c in clipset.clips])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", DEVICES)
def test_pretraining_epoch_throughput(benchmark, clips, device):
    dev = torch.device(device)
    system = build_system("cnn1d-small", device=device, pretrain_batch_size=24, batch_size=24, max_epochs=1)
    spec = system.input_spec(clips.sample_rate)
    audio = system.bank(clips, system.wave_spec(spec), dev)
    inputs = system.bank(clips, spec, dev)
    ids = [c.track_id for c in clips.clips]
    chunk = spec.frames(system.pretrain_config(spec).chunk_samples)

    def pretrainer(views: tuple[str, ...]) -> Pretrainer:
        torch.manual_seed(0)
        system.set_params(views=list(views), pretrain_epochs=1)
        config = system.pretrain_config(spec)
        return Pretrainer(system.build_network(1, spec), spec.module(), chunk, config, dev)

    def supervised_epoch() -> float:
        torch.manual_seed(0)
        trainer = Trainer(system.build_network(len(clips.classes), spec),
                          system.train_config(spec, None, "bench"), dev, clips.kind, list(clips.classes))
        t0 = time.perf_counter()
        trainer.fit(inputs, clips.y, ids)
        _sync(dev)
        return time.perf_counter() - t0

    def epoch(views: tuple[str, ...]) -> None:
        with torch_threads(1) if dev.type == "cpu" else nullcontext():  # as pretrain_backbone runs it
            pretrainer(views).fit(audio, ids)
        _sync(dev)

    def timed(views: tuple[str, ...]) -> float:
        t0 = time.perf_counter()
        epoch(views)
        return time.perf_counter() - t0

    timed(CHEAP_VIEWS), supervised_epoch()  # warm-up: imports, kernels, allocator
    supervised = min(supervised_epoch() for _ in range(3))
    default = min(timed(DEFAULT_VIEWS) for _ in range(2))
    benchmark.pedantic(lambda: epoch(CHEAP_VIEWS), rounds=3, warmup_rounds=0)
    cheap = benchmark.stats.stats.min
    chunk_seconds = system.chunk_seconds
    n = len(ids)
    benchmark.extra_info.update(
        device=device, clips=n, chunk_seconds=chunk_seconds,
        pretrain_clips_per_s=n / cheap, pretrain_x_realtime=2 * n * chunk_seconds / cheap,
        default_views_clips_per_s=n / default, default_views_x_realtime=2 * n * chunk_seconds / default,
        supervised_clips_per_s=n / supervised, pretrain_vs_supervised=cheap / supervised,
        default_views_vs_supervised=default / supervised,
    )
    print(f"\n{device}: pretraining {n / cheap:.1f} clips/s ({2 * n * chunk_seconds / cheap:.0f}x real time) "
          f"with {'+'.join(CHEAP_VIEWS)}, {n / default:.1f} clips/s with {'+'.join(DEFAULT_VIEWS)}; "
          f"supervised {n / supervised:.1f} clips/s; ratio {cheap / supervised:.2f}")
    assert np.isfinite(cheap) and cheap / supervised <= MAX_RATIO, (
        f"a pretraining epoch took {cheap / supervised:.1f}x a supervised epoch (limit {MAX_RATIO}x)")
