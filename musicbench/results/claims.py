"""Claims on cells: a lease file per cell under ``<out>/claims/``, so that runs sharing a
results folder (two ``musicbench run`` commands, or several machines over a shared
filesystem) never compute the same cell twice.

A lease names its owner and an expiry. It is taken before a cell is computed, renewed
by a background thread while the owner lives, and released once the cell's record is
written. A process that dies stops renewing: its leases expire and another run takes
the cells over (at once, when the dead process was on this machine). Every
check-and-write happens under one POSIX record lock on ``claims/.lock``
(``fcntl.lockf``, which NFS honours through its lock manager), so two processes can
never both see a cell free and both take it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from musicbench.runtime import atomic_write, pid_alive

LEASE_ENV = "MUSICBENCH_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60.0


def lease_seconds() -> float:
    return float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE_SECONDS)


def _dead_here(owner: str) -> bool:
    host, pid, _ = owner.rsplit(":", 2)
    return host == socket.gethostname() and not pid_alive(int(pid))


class Claims:
    """The leases one process holds on cells of one results folder."""

    def __init__(self, out_dir: str | Path, ttl: float | None = None):
        self.dir = Path(out_dir) / "claims"
        self.ttl = ttl if ttl is not None else lease_seconds()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.lease"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._mutex, open(self.dir / ".lock", "a+b") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(f, fcntl.LOCK_UN)

    def holder(self, key: str) -> str | None:
        """The owner of a live lease on ``key``, or None when it is free, expired, or held
        by a process of this machine that is gone (no need to wait for its expiry)."""
        try:
            lease = json.loads(self._path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if lease["expires"] <= time.time() or _dead_here(lease["owner"]):
            return None
        return lease["owner"]

    def _write(self, key: str) -> None:
        atomic_write(self._path(key), json.dumps({"owner": self.owner, "expires": time.time() + self.ttl}))

    def acquire(self, key: str) -> bool:
        """Take the lease on ``key`` unless another owner holds a live one."""
        with self._locked():
            holder = self.holder(key)
            if holder not in (None, self.owner):
                return False
            self._write(key)
            self.held.add(key)
        return True

    def release(self, key: str) -> None:
        with self._locked():
            if self.holder(key) == self.owner:
                self._path(key).unlink(missing_ok=True)
            self.held.discard(key)

    def renew(self) -> list[str]:
        """Extend every lease held; returns the keys lost to another owner (this process
        stalled past the expiry and the cell was taken over)."""
        lost = []
        with self._locked():
            for key in list(self.held):
                if self.holder(key) in (None, self.owner):
                    self._write(key)
                else:
                    lost.append(key)
                    self.held.discard(key)
        return lost

    def __enter__(self) -> Claims:
        def loop() -> None:
            while not self._stop.wait(self.ttl / 3):
                self.renew()

        self._renewer = threading.Thread(target=loop, name="claims-renewer", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        for key in list(self.held):
            self.release(key)
