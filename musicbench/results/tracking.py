"""MLflow logging: one run per cell, in an experiment named after the suite.

The default store is a SQLite file in the working directory (``mlflow.db``, artifacts in
``mlartifacts/``) unless ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` says otherwise.
Runs carry the cell key as a tag, so logging is idempotent: a cell already logged is
found, not logged twice; where two processes log the same key at once, both keep the
first run and delete the other (``dedupe``). Several processes may open a
fresh store together: a SQLite store is created under a file lock, and an experiment
another process created meanwhile is looked up again.

``TrackingQueue`` logs from a process of its own, started with the run, so MLflow never
sits on a run's critical path; records are in the results store before they are queued,
so a record whose logging was cut short is logged by the next run.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from musicbench.errors import ConfigError
from musicbench.results.schema import CELL_TAG, CellRecord
from musicbench.runtime import code_version, package_versions


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"

@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise opening a SQLite store between processes: two processes creating its
    tables at once make one fail (``table ... already exists``)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


class Tracker:
    """Logs finished cells to MLflow; failures to log never lose the cell's results."""

    def __init__(self, experiment: str, tracking_uri: str | None = None):
        import mlflow
        from mlflow import MlflowClient

        self.uri = tracking_uri or default_tracking_uri()
        mlflow.set_tracking_uri(self.uri)
        with store_lock(self.uri):
            self.client = MlflowClient(self.uri)
            self.experiment_id = self._experiment(experiment)

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.uri.startswith("sqlite:///"):
            location = (Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts" / name).as_uri()
        try:
            return self.client.create_experiment(name, location)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id  # created meanwhile

    def dedupe(self, filter_string: str, mine: str) -> str:
        """The one run matching ``filter_string`` to keep: the first created (then the
        smallest id). Others (logged by a process racing this one) are deleted; every
        racer makes the same choice, and a racer that found only its own run keeps it."""
        runs = self.client.search_runs([self.experiment_id], filter_string, max_results=100)
        order = sorted({(r.info.start_time, r.info.run_id) for r in runs}
                       | {(self.client.get_run(mine).info.start_time, mine)})
        for _, run_id in order[1:]:
            self.client.delete_run(run_id)
        return order[0][1]

    def find(self, cell_key: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id], f"tags.`{CELL_TAG}` = '{cell_key}' and attributes.status = "
            "'FINISHED'", max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def log_cell(self, record: CellRecord, artifacts: list[Path]) -> str:
        from mlflow.entities import Metric, Param

        found = self.find(record.cell_key)
        if found:
            return found
        tags = {**record.mlflow_tags(), "code_version": code_version(),
                **{f"version.{k}": v for k, v in package_versions().items()}}
        run_id = self.client.create_run(self.experiment_id, tags=tags).info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id, metrics=[Metric(k, v, now, step) for k, v, step in record.mlflow_metrics()],
            params=[Param(k, v) for k, v in record.mlflow_params().items()],
        )
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, "FINISHED" if record.ok else "FAILED")
        if record.ok:
            return self.dedupe(f"tags.`{CELL_TAG}` = '{record.cell_key}' and attributes.status = "
                               "'FINISHED'", run_id)
        return run_id


def tracking_error(uri: str, reason: str) -> ConfigError:
    """The error for a tracking URI that cannot be used, with what would be valid."""
    return ConfigError(f"tracking URI {uri!r} cannot be used ({reason}); valid: sqlite:///PATH, "
                       "file:PATH, http(s)://HOST:PORT, postgresql://..., or --no-mlflow")


def _logger(experiment: str, uri: str, requests, replies) -> None:
    """The logger process: open the store, say whether it opened, then log each request
    ``(seq, record, artifact paths)`` and reply ``(seq, run id, warning)`` until None."""
    reason = None
    try:
        tracker: Tracker | None = Tracker(experiment, uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a bad URI
        tracker, reason = None, (str(exc).splitlines() or [type(exc).__name__])[0].strip()
    replies.put(("opened", reason))
    while (item := requests.get()) is not None:
        seq, record, artifacts = item
        if tracker is None:  # reported once; the records stay unlogged until a later run
            replies.put((seq, None, reason and f"WARNING: MLflow logging failed for {record.cell_key}: "
                                              f"{reason}; not logging this run's other cells"))
            reason = None
            continue
        try:
            replies.put((seq, tracker.log_cell(record, [Path(a) for a in artifacts]), None))
        except Exception as exc:  # noqa: BLE001 - tracking must never cost a result
            replies.put((seq, None, f"WARNING: MLflow logging failed for {record.cell_key}: "
                                    f"{type(exc).__name__}: {exc}"))
    replies.put(None)


class TrackingQueue:
    """Logs records to MLflow in order, from a logger process of its own.

    The process starts with the queue, so importing MLflow and opening its store (seconds)
    happen beside the run's own start-up instead of before it; ``ready()`` waits for the
    store and raises a ``ConfigError`` if it cannot be used, which a run asks before it
    writes anything, and only when it has something to log (``abandon()`` otherwise).
    ``put(record, artifacts, then)`` queues a record already saved in the results store;
    once it is logged, ``on_logged(record)`` runs (the record now carries its run id),
    and ``then()`` runs whether logging succeeded or not. A store that cannot be opened
    is reported once; its records stay unlogged until a later run. ``close`` waits for
    the queue to drain.
    """

    POLL_SECONDS = 1.0  # how often a silent logger process is checked for being alive

    def __init__(self, experiment: str, tracking_uri: str | None,
                 on_logged: Callable[[CellRecord], None], warn: Callable[[str], None]):
        import multiprocessing

        self.uri = tracking_uri or default_tracking_uri()
        self.on_logged, self.warn = on_logged, warn
        ctx = multiprocessing.get_context("spawn")  # no locks of this process's threads inherited
        self._requests, self._replies = ctx.Queue(), ctx.Queue()
        self._process = ctx.Process(target=_logger, name="mlflow-logger", daemon=True,
                                    args=(experiment, self.uri, self._requests, self._replies))
        self._process.start()
        self._pending: dict[int, tuple[CellRecord, Callable[[], None] | None]] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._opened = threading.Event()
        self._open_error: str | None = None
        self._reader = threading.Thread(target=self._read, name="mlflow-replies", daemon=True)
        self._reader.start()

    def ready(self) -> None:
        """Wait until the store is open; a ``ConfigError`` if it cannot be used."""
        self._opened.wait()
        if self._open_error is not None:
            raise tracking_error(self.uri, self._open_error)

    def put(self, record: CellRecord, artifacts: list[Path], then: Callable[[], None] | None = None) -> None:
        if not self._reader.is_alive():  # the logger process is gone: the record stays unlogged
            self._answer(record, then, None, None)
            return
        with self._lock:
            self._seq += 1
            self._pending[self._seq] = (record, then)
            self._requests.put((self._seq, record, [str(a) for a in artifacts]))

    def _read(self) -> None:
        while True:
            try:
                reply = self._replies.get(timeout=self.POLL_SECONDS)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                reply = None
            if reply is None:
                break
            if reply[0] == "opened":
                self._open_error = reply[1]
                self._opened.set()
                continue
            seq, run_id, warning = reply
            with self._lock:
                record, then = self._pending.pop(seq)
            self._answer(record, then, run_id, warning)
        if not self._opened.is_set():
            self._open_error = f"the MLflow logger process ended with exit code {self._process.exitcode}"
            self._opened.set()
        with self._lock:  # a logger process that died: its records stay unlogged
            left, self._pending = list(self._pending.values()), {}
        for record, then in left:
            self._answer(record, then, None, None)

    def _answer(self, record: CellRecord, then: Callable[[], None] | None, run_id: str | None,
                warning: str | None) -> None:
        try:
            if run_id is not None:
                record.mlflow_run_id = run_id
                self.on_logged(record)
            elif warning is not None:
                self.warn(warning)
        finally:
            if then is not None:
                then()

    def close(self) -> None:
        """Log what is queued, then stop the logger process."""
        self._requests.put(None)
        self._reader.join()
        self._process.join()

    def abandon(self) -> None:
        """Stop the logger process at once (a run with nothing to log, or refused input)."""
        self._process.terminate()
        self._process.join()
        self._replies.put(None)
        self._reader.join()
