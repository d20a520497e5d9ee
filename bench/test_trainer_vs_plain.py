"""The deep trainer against a minimal plain PyTorch loop, and the cached front ends.

- ``test_trainer_matches_a_plain_loop``: the ``cnn2d`` recipe network trained on the
  same cached log-mel inputs of ``synth_genre:mini`` by the harness's ``Trainer`` and by
  a twenty-line loop (random chunk per draw, AdamW, cross-entropy), alternating, in the
  same process. The trainer's seconds per chunk seen must be within 1.1x of the loop's.
- ``test_cached_front_end_first_vs_later_epochs``: a fit on an empty feature cache
  (the first epoch computes every clip's log-mel or CQT and caches it) against the
  epochs after it, which only run the network.

Both numbers are in ``extra_info``; run with ``pytest bench/test_trainer_vs_plain.py
--benchmark-only``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from musicbench.systems import build_system
from musicbench.systems.deep.trainer import Trainer
from musicbench.tasks import ClipData

EPOCHS, ROUNDS = 1, 3


@pytest.fixture(scope="module")
def clips() -> ClipData:
    from musicbench.tasks import get_task

    clipset = get_task("synth_genre:mini").clips()
    return clipset.part([c.track_id for c in clipset.clips])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_loop(net: torch.nn.Module, feats: torch.Tensor, lengths: np.ndarray, y: torch.Tensor,
               chunk: int, chunks_per_clip: int, batch_size: int, epochs: int, seed: int) -> int:
    """What a user would write: shuffle, cut random chunks, step AdamW. Returns chunks seen."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    net.train()
    seen = 0
    for _ in range(epochs):
        order = rng.permutation(np.repeat(np.arange(len(lengths)), chunks_per_clip))
        for b in range(0, len(order), batch_size):
            rows = order[b: b + batch_size]
            starts = rng.integers(0, np.maximum(lengths[rows] - chunk, 0) + 1)
            x = torch.stack([feats[r, :, s: s + chunk] for r, s in zip(rows.tolist(), starts.tolist(),
                                                                          strict=True)])
            loss = torch.nn.functional.cross_entropy(net(x), y[torch.from_numpy(rows).to(y.device)])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(rows)
    return seen


def test_trainer_matches_a_plain_loop(benchmark, clips, bench_device):
    system = build_system("cnn2d", device=bench_device, max_epochs=EPOCHS, amp=False)
    spec = system.input_spec(clips.sample_rate)
    device = torch.device(bench_device)
    bank = system.bank(clips, spec, device)
    cfg = system.train_config(spec, None, "bench")
    y = torch.as_tensor(clips.y, device=device)
    ids = [c.track_id for c in clips.clips]
    feats = bank.read(np.arange(len(bank)), np.zeros(len(bank), np.int64), int(bank.lengths.max())).to(device)

    def run_trainer() -> float:
        torch.manual_seed(0)
        trainer = Trainer(system.build_network(len(clips.classes), spec), cfg, device, clips.kind,
                          list(clips.classes))
        t0 = time.perf_counter()
        trainer.fit(bank, clips.y, ids)
        _sync(bench_device)
        seconds = time.perf_counter() - t0
        return seconds / sum(h["train_chunks"] for h in trainer.history)

    def run_plain() -> float:
        torch.manual_seed(0)
        net = system.build_network(len(clips.classes), spec).to(device)
        t0 = time.perf_counter()
        seen = plain_loop(net, feats, bank.lengths, y, cfg.chunk, cfg.chunks_per_clip, cfg.batch_size,
                          EPOCHS, 0)
        _sync(bench_device)
        return (time.perf_counter() - t0) / seen

    run_plain(), run_trainer()  # warm-up: allocator, kernels
    trainer_s, plain_s = [], []
    for _ in range(ROUNDS):  # alternate, so load from elsewhere hits both alike
        trainer_s.append(run_trainer())
        plain_s.append(run_plain())
    benchmark.pedantic(run_trainer, rounds=1)
    ratio = min(trainer_s) / min(plain_s)
    benchmark.extra_info.update(
        trainer_ms_per_chunk=1e3 * min(trainer_s), plain_ms_per_chunk=1e3 * min(plain_s),
        trainer_vs_plain=ratio, chunks_per_epoch=len(clips) * cfg.chunks_per_clip,
        chunk_frames=cfg.chunk, batch_size=cfg.batch_size,
    )
    assert ratio <= 1.1, (f"trainer {1e3 * min(trainer_s):.2f} ms/chunk vs plain loop "
                          f"{1e3 * min(plain_s):.2f} ms/chunk ({ratio:.2f}x)")


@pytest.mark.parametrize("frontend", ["logmel", "cqt"])
def test_cached_front_end_first_vs_later_epochs(benchmark, frontend, clips, bench_device, tmp_path,
                                                monkeypatch):
    """First epoch (inputs computed and cached) against later ones (network only)."""
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path))
    epochs = 3

    def fit() -> tuple[float, list[float]]:
        system = build_system("cnn2d-small", device=bench_device, frontend=frontend, max_epochs=epochs)
        t0 = time.perf_counter()
        system.fit(clips)
        _sync(bench_device)
        return time.perf_counter() - t0, [h["seconds"] for h in system.history_]

    total, seconds = benchmark.pedantic(fit, rounds=1)
    later = float(np.mean(seconds[1:]))
    first = total - sum(seconds[1:])
    cached_total, _ = fit()  # a second fit: every input comes from the cache
    benchmark.extra_info.update(first_epoch_s=first, later_epoch_s=later, first_vs_later=first / later,
                                refit_from_cache_s=cached_total, clips=len(clips))
    assert later < first
