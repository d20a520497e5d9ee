"""Shared fixtures of the throughput benchmarks (``musicbench bench`` runs this folder).

``bench_device`` is the device the benchmarks should use (``MUSICBENCH_BENCH_DEVICE``,
set by ``musicbench bench --device``); ``hardware`` describes the machine. The
descriptor is also written into pytest-benchmark's ``machine_info`` so any JSON this
folder produces says where it was measured.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def bench_device() -> str:
    device = os.environ.get("MUSICBENCH_BENCH_DEVICE", "cpu")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"MUSICBENCH_BENCH_DEVICE={device} but no CUDA device is available")
    return device


@pytest.fixture(scope="session")
def hardware(bench_device) -> dict:
    from musicbench.throughput.hardware import describe

    return describe(bench_device)


def pytest_benchmark_update_machine_info(config, machine_info):
    from musicbench.throughput.hardware import describe

    machine_info["hardware"] = describe(os.environ.get("MUSICBENCH_BENCH_DEVICE", "cpu"))
