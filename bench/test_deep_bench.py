"""Throughput of the deep family: torch front end vs librosa, training and inference speed.

Run with ``pytest bench --benchmark-only``. The audio is every clip of the embedded
``synth_genre:mini`` task (clip count and seconds of audio are in ``extra_info``).
librosa and torch are warmed up (numba compilation, first kernel launches) before
anything is timed. On CPU the torch front end is bound by the same FFT
work as librosa and must not be more than 2x slower; on CUDA it must be at least 50x
faster than librosa in one process. On a CPU with bfloat16 instructions, a reference-size
preset's epoch in ``amp = "bf16"`` must take at most 0.8x its float32 epoch.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from musicbench.features.frontends import FrontEnd
from musicbench.systems import build_system
from musicbench.systems.deep.frontend import LogMel
from musicbench.systems.deep.inputs import DeepInput, FeatureBank
from musicbench.systems.deep.trainer import Trainer
from musicbench.tasks import ClipData

SR, N_FFT, HOP, N_MELS = 22050, 1024, 512, 64
DEEP_PRESETS = ("cnn1d-small", "cnn2d-small", "samplecnn-small", "harmoniccnn-small",
                "cnn1d", "cnn2d", "samplecnn", "harmoniccnn")
REFERENCE_PRESETS = ("fcn-ref", "musicnn-ref", "shortchunk-cnn-ref", "shortchunk-resnet-ref",
                     "samplecnn-ref", "harmoniccnn-ref")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def clipset():
    from musicbench.tasks import get_task

    return get_task("synth_genre:mini").clips()


@pytest.fixture(scope="module")
def clips(clipset) -> ClipData:
    return clipset.part([c.track_id for c in clipset.clips])


@pytest.fixture(scope="module")
def waves(clips) -> list[np.ndarray]:
    spec = DeepInput("wave", clips.sample_rate, clips.sample_rate)
    return [spec(clips.audio(i))[:, 0] for i in range(len(clips))]


def test_logmel_torch_batched_vs_librosa(benchmark, waves, bench_device):
    librosa_fe = FrontEnd("logmel", SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    torch_fe = LogMel(SR, N_FFT, HOP, N_MELS).to(bench_device)
    batch = torch.from_numpy(np.stack(waves)).to(bench_device)

    def run_torch():
        with torch.no_grad():
            out = torch_fe(batch)
        _sync(bench_device)
        return out

    librosa_fe(waves[0])  # numba compilation and librosa's filter caches
    run_torch()
    librosa_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for y in waves:
            librosa_fe(y)
        librosa_times.append(time.perf_counter() - t0)
    benchmark.pedantic(run_torch, rounds=5, warmup_rounds=1)
    librosa_s, torch_s = min(librosa_times), benchmark.stats.stats.min
    seconds_of_audio = sum(len(y) for y in waves) / SR
    benchmark.extra_info.update(
        clips=len(waves), audio_seconds=seconds_of_audio, librosa_s=librosa_s, torch_s=torch_s,
        torch_vs_librosa_speedup=librosa_s / torch_s, torch_x_realtime=seconds_of_audio / torch_s,
        librosa_x_realtime=seconds_of_audio / librosa_s,
    )
    if bench_device.startswith("cuda"):
        assert librosa_s / torch_s >= 50, f"torch on {bench_device} only {librosa_s / torch_s:.1f}x librosa"
    else:
        assert torch_s <= 2 * librosa_s, f"torch {torch_s:.3f}s vs librosa {librosa_s:.3f}s"


def _trainer(name: str, clips: ClipData, device: str, **overrides) -> tuple[Trainer, FeatureBank]:
    system = build_system(name, device=device, **overrides)
    spec = system.input_spec(clips.sample_rate)
    net = system.build_network(len(clips.classes), spec)
    cfg = system.train_config(spec, None, name)
    cfg.max_epochs = 1
    bank = system.bank(clips, spec, torch.device(device))
    return Trainer(net, cfg, torch.device(device), clips.kind, list(clips.classes)), bank


def _throughput(benchmark, trainer: Trainer, bank: FeatureBank, clips: ClipData, device: str) -> None:
    ids = [c.track_id for c in clips.clips]
    trainer.fit(bank, clips.y, ids)  # warm-up epoch (and compilation, with torch_compile)

    def epoch():
        trainer.fit(bank, clips.y, ids)
        _sync(device)

    benchmark.pedantic(epoch, rounds=3)
    chunks = len(clips) * trainer.cfg.chunks_per_clip
    benchmark.extra_info.update(clips_per_s=len(clips) / benchmark.stats.stats.mean,
                                chunks_per_s=chunks / benchmark.stats.stats.mean,
                                chunk_seconds=trainer.cfg.audio_chunk / trainer.cfg.sample_rate,
                                n_parameters=sum(p.numel() for p in trainer.model.parameters()))


@pytest.mark.parametrize("name", DEEP_PRESETS)
def test_training_throughput(benchmark, name, clips, bench_device):
    """One epoch over the task's clips at the preset's size, inputs cached: clips/s."""
    torch.manual_seed(0)
    _throughput(benchmark, *_trainer(name, clips, bench_device), clips, bench_device)


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_reference_training_throughput_on_gpu(benchmark, name, compiled, clips, bench_device):
    """Reference-size presets at their published sizes: clips/s for one epoch, on CUDA
    (mixed precision, channels-last, optionally ``torch.compile``)."""
    if not bench_device.startswith("cuda"):
        pytest.skip("reference-size presets are benchmarked on CUDA only "
                    "(MUSICBENCH_BENCH_DEVICE=cuda); their CPU cost is in the deep-ref suite")
    torch.manual_seed(0)
    _throughput(benchmark, *_trainer(name, clips, bench_device, torch_compile=compiled), clips,
                bench_device)


def _cpu_has_bfloat16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
def test_reference_training_bfloat16_vs_float32_on_cpu(benchmark, name, clipset, bench_device):
    """An epoch of a reference-size preset on 24 clips in bfloat16 autocast against float32,
    alternating in the same process (best of two each)."""
    if bench_device != "cpu":
        pytest.skip("bfloat16 autocast on CPU is benchmarked with MUSICBENCH_BENCH_DEVICE=cpu")
    if not _cpu_has_bfloat16():
        pytest.skip("this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): amp = 'bf16' "
                    "would be emulated there")
    part = clipset.part([c.track_id for c in clipset.clips[:24]])
    ids = [c.track_id for c in part.clips]
    runs = {amp: _trainer(name, part, "cpu", amp=amp) for amp in (False, "bf16")}

    def epoch(amp) -> float:
        trainer, bank = runs[amp]
        t0 = time.perf_counter()
        trainer.fit(bank, part.y, ids)
        return time.perf_counter() - t0

    times: dict = {amp: [] for amp in runs}
    for amp in runs:  # warm-up: allocator, oneDNN kernels
        epoch(amp)
    for _ in range(2):
        for amp in runs:
            times[amp].append(epoch(amp))
    benchmark.pedantic(epoch, args=("bf16",), rounds=1)
    ratio = min(times["bf16"]) / min(times[False])
    benchmark.extra_info.update(float32_s=min(times[False]), bfloat16_s=min(times["bf16"]),
                                bfloat16_vs_float32=ratio, clips=len(ids))
    assert ratio <= 0.8, f"bfloat16 epoch {ratio:.2f}x the float32 one"


@pytest.mark.parametrize("name", DEEP_PRESETS)
def test_inference_latency(benchmark, name, clips, bench_device):
    """Scoring one clip (all its chunks, aggregated): p50 and p95 latency."""
    trainer, _ = _trainer(name, clips, bench_device)
    system = build_system(name, device=bench_device)
    spec = system.input_spec(clips.sample_rate)
    banks = [system.bank(ClipData(clips.task, [clips.clips[i]], clips.classes, clips.kind, None), spec,
                         torch.device(bench_device)) for i in range(20)]
    trainer.predict(banks[0])
    times: list[float] = []
    cycle = iter(banks * 10)

    def one_clip():
        t0 = time.perf_counter()
        trainer.predict(next(cycle))
        _sync(bench_device)
        times.append(time.perf_counter() - t0)

    benchmark.pedantic(one_clip, rounds=30)
    benchmark.extra_info.update(p50_ms=1e3 * float(np.percentile(times, 50)),
                                p95_ms=1e3 * float(np.percentile(times, 95)))
