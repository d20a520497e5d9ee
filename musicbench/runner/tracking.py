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
from typing import Any

from musicbench.runtime import code_version, package_versions

CELL_TAG = "musicbench.cell_key"


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

    def log_cell(self, record: dict[str, Any], params: dict[str, Any],
                 artifacts: list[Path]) -> str:
        from mlflow.entities import Metric, Param, RunTag

        found = self.find(record["cell_key"])
        if found:
            return found
        name = "|".join(str(record[k]) for k in ("task", "protocol", "fold", "system", "seed"))
        tags = {
            CELL_TAG: record["cell_key"], "mlflow.runName": name,
            "split_hash": record["split_hash"], "code_version": code_version(),
            "device": record["device"], "status": record["status"],
            **{f"version.{k}": v for k, v in package_versions().items()},
        }
        run = self.client.create_run(self.experiment_id, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in record.items()
                   if k in METRIC_KEYS and v is not None]
        training = (record.get("details") or {}).get("training", {})
        for row in training.get("history", []):  # per-epoch curves of neural systems
            step = int(row.get("epoch", 0))
            metrics += [Metric(f"epoch.{k}", float(v), now, step) for k, v in row.items()
                        if k != "epoch" and isinstance(v, (int, float)) and v == v]
        for k in ("best_epoch", "n_parameters"):
            if k in training:
                metrics.append(Metric(k, float(training[k]), now, 0))
        flat = {**params, **{k: record.get(k) for k in (
            "task", "version", "protocol", "fold", "system", "seed", "augment", "deform", "tuned",
            "tuned_study", "tuned_trials", "n_train", "n_test")}}
        self.client.log_batch(
            run_id, metrics=metrics,
            params=[Param(k, str(v)[:6000]) for k, v in flat.items()],
            tags=[RunTag(k, str(v)) for k, v in (("error", record.get("error")),) if v],
        )
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, "FINISHED" if record["status"] == "ok" else "FAILED")
        return run_id


METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "pr_auc_macro",
               "fit_seconds", "predict_seconds", "n_tags_dropped", "group_leakage"}
