"""What every layer needs from the process it runs in: the cache root, the device, seeds,
atomic file writes, BLAS thread limits and the code version.

This is the bottom layer: it imports nothing else of musicbench but ``errors``.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np

import musicbench
from musicbench.errors import ConfigError

CACHE_ENV = "MUSICBENCH_CACHE"
PROGRESS_ENV = "MUSICBENCH_PROGRESS_SECONDS"
QUIET_ENV = "MUSICBENCH_QUIET"  # set: no progress bars or lines (inherited by worker processes)
VERSIONED = ("torch", "librosa", "scikit-learn", "mirdata", "numpy", "mlflow", "optuna",
             "soundfile", "pandas")


def benchmark_env(**extra: str) -> dict[str, str]:
    """The environment of a child pytest-benchmark session: this one's, less the markers
    of a pytest-xdist worker, which would make the child disable its benchmarks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    return {**env, **extra}


def cache_root() -> Path:
    """The on-disk cache shared by generated data, feature and embedding caches."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "musicbench")
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_device(device: str) -> None:
    """Refuse a device this machine lacks before any work starts."""
    if device == "cpu":
        return
    import torch

    ok = {"cuda": torch.cuda.is_available,
          "mps": lambda: torch.backends.mps.is_available()}.get(device.split(":")[0])
    if ok is None:
        raise ConfigError(f"device {device!r}: must be cpu, cuda[:N] or mps")
    if not ok():
        raise ConfigError(f"device {device!r} was asked for but is not available on this machine")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _writer() -> str:
    """Who writes a temporary file: the process and its host, so a sweep can tell a
    killed writer's leftovers from a live writer's file."""
    return f"w{os.getpid()}-{_host()}"


_TMP = re.compile(r"\.w(\d+)-([0-9a-f]{8})\.[^.]*\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep_orphaned_writes(folder: Path) -> int:
    """Remove the temporary files ``atomic_write`` left under ``folder`` when its process
    was killed mid-write (this host's writers only: another machine's may be alive).
    Returns how many were removed."""
    removed = 0
    for tmp in Path(folder).rglob("*.tmp") if Path(folder).is_dir() else ():
        m = _TMP.search(tmp.name)
        if m and m.group(2) == _host() and not pid_alive(int(m.group(1))):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write by rename, so readers see the old file or the whole new one; the file gets
    the mode any plain ``open`` would give it (0666 less the umask), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def single_threaded():
    """Limit BLAS/OpenMP to one thread: small-matrix models gain nothing from more, and
    threads spin-wait badly on a busy machine (measured: a diagonal GMM fit 65x slower
    with two BLAS threads while other processes used the cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


@cache
def code_version() -> str:
    """Package version, plus the git commit (and a '+dirty' mark) in a source checkout."""
    root = Path(musicbench.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                             capture_output=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True, timeout=5).stdout
        return f"{musicbench.__version__}+{sha}{'.dirty' if dirty.strip() else ''}"
    except (OSError, subprocess.SubprocessError):
        return musicbench.__version__


@cache
def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


class PlainProgress:
    """Progress as plain lines every ``$MUSICBENCH_PROGRESS_SECONDS`` (default 10) seconds,
    for a stderr that is not a terminal (CI logs, ``nohup``), where a bar would print nothing
    until the end."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.n = total, desc, 0
        self.every = float(os.environ.get(PROGRESS_ENV) or 10)
        self.t0 = self.last = time.monotonic()
        self._line()

    def _line(self) -> None:
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        elapsed = time.monotonic() - self.t0
        rate = self.n / elapsed if elapsed > 0 and self.n else 0.0
        left = self.total - self.n
        pace = f", {rate:.1f}/s, ETA {left / rate:.0f} s" if rate and left > 0 else ""
        print(f"{self.desc}: {self.n}/{self.total}{pct}, {elapsed:.0f} s{pace}", file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._line()

    def close(self) -> None:
        self._line()


def progress(total: int, desc: str):
    """A progress bar on a terminal, periodic plain lines (count, rate, ETA) elsewhere;
    nothing for no work or under ``$MUSICBENCH_QUIET``."""
    quiet = bool(os.environ.get(QUIET_ENV))
    if quiet or sys.stderr.isatty() or not total:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, disable=True if quiet else None)
    return PlainProgress(total, desc)


def exit_with_parent(parent: int, poll_seconds: float = 0.5) -> None:
    """In a worker process started by ``parent``: exit as soon as that process has died
    (the worker is then re-parented), so a killed run leaves no orphans holding memory."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
