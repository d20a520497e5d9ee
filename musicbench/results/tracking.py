"""MLflow logging: one run per cell, in an experiment named after the suite.

The default store is a SQLite file in the working directory (``mlflow.db``, artifacts in
``mlartifacts/``) unless ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` says otherwise.
Runs carry the cell key as a tag, so logging is idempotent: a cell already logged is
found, not logged twice.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from musicbench.results.schema import CELL_TAG, CellRecord
from musicbench.runtime import code_version, package_versions


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"

class Tracker:
    """Logs finished cells to MLflow; failures to log never lose the cell's results."""

    def __init__(self, experiment: str, tracking_uri: str | None = None):
        import mlflow
        from mlflow import MlflowClient

        self.uri = tracking_uri or default_tracking_uri()
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if self.uri.startswith("sqlite:///"):
                location = (Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts"
                            / experiment).as_uri()
            self.experiment_id = self.client.create_experiment(experiment, location)
        else:
            self.experiment_id = exp.experiment_id

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
        return run_id
