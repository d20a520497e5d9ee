"""MLflow logging: one run per cell, in an experiment named after the suite.

The default store is a SQLite file in the working directory (``mlflow.db``, artifacts in
``mlartifacts/``) unless ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` says otherwise.
Runs carry the cell key as a tag, so logging is idempotent: a cell already logged is
found, not logged twice; where two processes log the same key at once, both keep the
first run and delete the other (``dedupe``). Several processes may open a
fresh store together: a SQLite store is created under a file lock, and an experiment
another process created meanwhile is looked up again.

``TrackingQueue`` logs from a background thread, so MLflow never sits on a run's
critical path; records are in the results store before they are queued, so a record
whose logging was cut short is logged by the next run.
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


class TrackingQueue:
    """Logs records to MLflow in order, through ``tracker`` (open already: the run opened
    it to check its tracking URI), from one background thread.

    ``put(record, artifacts, then)`` queues a record already saved in the results store;
    once it is logged, ``on_logged(record)`` runs (the record now carries its run id),
    and ``then()`` runs whether logging succeeded or not. A record that fails to log is
    reported and stays unlogged until a later run. ``close`` waits for the queue to drain.
    """

    def __init__(self, tracker: Tracker, on_logged: Callable[[CellRecord], None],
                 warn: Callable[[str], None]):
        self.tracker = tracker
        self.on_logged, self.warn = on_logged, warn
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlflow-logger", daemon=True)
        self._thread.start()

    def put(self, record: CellRecord, artifacts: list[Path], then: Callable[[], None] | None = None) -> None:
        self._queue.put((record, artifacts, then))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            record, artifacts, then = item
            try:
                record.mlflow_run_id = self.tracker.log_cell(record, artifacts)
                self.on_logged(record)
            except Exception as exc:  # noqa: BLE001 - tracking must never cost a result
                self.warn(f"WARNING: MLflow logging failed for {record.cell_key}: "
                          f"{type(exc).__name__}: {exc}")
            finally:
                if then is not None:
                    then()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
