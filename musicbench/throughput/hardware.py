"""A descriptor of the machine a benchmark ran on, so timings are read against their hardware."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def gpu_info(device: str = "cpu") -> dict[str, Any]:
    """Name and memory of GPU 0 (and the CUDA version where torch is in use); empty without one.

    ``nvidia-smi`` answers without importing torch (seconds saved on CPU-only runs);
    torch is asked when the device is CUDA or torch is already loaded.
    """
    info: dict[str, Any] = {}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            rows = [r.split(",") for r in out.strip().splitlines() if r.strip()]
            if rows:
                info = {"gpu": rows[0][0].strip(), "gpu_memory_gib": round(float(rows[0][1]) / 1024, 1),
                        "gpu_count": len(rows)}
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    if device.startswith("cuda") or "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info = {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                    "gpu_count": torch.cuda.device_count(), "cuda": torch.version.cuda}
    return info


def describe(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, memory, GPU, Python and library versions, code version."""
    from musicbench.runtime import code_version, package_versions

    return {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": _usable_cores(),
        "memory_gib": _memory_gib(),
        "gpu": None, **gpu_info(device),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "code_version": code_version(),
        "versions": package_versions(),
    }
