"""Real servers for the scale-out tests, on 127.0.0.1 and stopped afterwards: a
PostgreSQL cluster from the Debian package (``initdb`` into a temporary folder, started
on a free port) and an ``mlflow server`` with that PostgreSQL as its backend store."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_USER = "musicbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _as_cluster_owner(cmd: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres(databases: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """A throw-away PostgreSQL cluster; yields a SQLAlchemy URL per database."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="musicbench-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    pg_ctl = _as_cluster_owner([str(bindir / "pg_ctl"), "-D", str(data)])
    started = False
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                  "--no-sync"]
        subprocess.run(_as_cluster_owner(initdb), check=True, capture_output=True, text=True)
        subprocess.run([*pg_ctl, "-l", str(root / "server.log"), "-w", "-t", "120", "-o",
                        f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
                        "-c max_connections=200", "start"], check=True, capture_output=True, text=True)
        started = True
        for db in databases:
            subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, db],
                           check=True, capture_output=True, text=True)
        yield {db: f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/{db}" for db in databases}
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, text=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path) -> Iterator[str]:
    """``mlflow server`` on a free port of 127.0.0.1; yields its tracking URI."""
    port = free_port()
    log = open(artifacts.parent / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    exe = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(exe), "server", "--backend-store-uri", backend_uri,
                             "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("mlflow server did not start:\n"
                                   + (artifacts.parent / "mlflow-server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: its own session
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
