"""MLflow logging of a study: one parent run per study, one nested run per finished trial.

The parent run is found again by its study key (storage and study name), so resumed
runs and later invocations add to it. Trials are logged at most once (their number is
a tag), from one process per command, so parallel workers never contend for the MLflow
store; where two commands tune one study, a trial both logged keeps one run (``dedupe``).
Tracking failures are reported and never cost a trial.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

from musicbench.results.tracking import Tracker
from musicbench.runtime import code_version
from musicbench.tuning.study import SURPLUS

EXPERIMENT = "tune"
STUDY_TAG = "musicbench.study_key"
TRIAL_TAG = "musicbench.trial"
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def study_key(storage_label: str, study_name: str) -> str:
    """The parent run's lookup tag: a digest, so any study name is safe in a filter string."""
    return hashlib.sha1(f"{storage_label}#{study_name}".encode()).hexdigest()[:20]


def _ms(when: Any) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _warn(exc: Exception) -> None:
    print(f"WARNING: MLflow logging failed: {type(exc).__name__}: {exc}", file=sys.stderr)


class StudyTracker:
    def __init__(self, study_name: str, storage_label: str, tracking_uri: str | None):
        self.study_name, self.storage_label = study_name, storage_label
        self.key = study_key(storage_label, study_name)
        self.tracker = Tracker(EXPERIMENT, tracking_uri)
        self.client = self.tracker.client
        self.parent_id: str | None = None
        self.logged: set[int] = set()

    def start(self, attrs: dict[str, Any]) -> str:
        """Find or create the study's parent run, and note which trials it already holds."""
        from mlflow.entities import Param

        exp = self.tracker.experiment_id
        found = self.client.search_runs([exp], f"tags.`{STUDY_TAG}` = '{self.key}'", max_results=1)
        if found:
            self.parent_id = found[0].info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            self.logged = self._logged_trials()
            return self.parent_id
        run = self.client.create_run(exp, tags={
            STUDY_TAG: self.key, "mlflow.runName": f"study {self.study_name}",
            "code_version": code_version(), "study": self.study_name, "storage": self.storage_label,
        })
        self.parent_id = self.tracker.dedupe(f"tags.`{STUDY_TAG}` = '{self.key}'", run.info.run_id)
        if self.parent_id != run.info.run_id:  # another process created it meanwhile
            self.logged = self._logged_trials()
            return self.parent_id
        flat = {k: v for k, v in attrs.items() if k not in ("search_space", "fixed_params")}
        flat.update({f"fixed.{k}": v for k, v in attrs.get("fixed_params", {}).items()})
        flat.update({f"space.{k}": json.dumps(v, sort_keys=True)
                     for k, v in attrs["search_space"].items()})
        self.client.log_batch(self.parent_id, params=[Param(k, str(v)) for k, v in flat.items()])
        self.client.log_dict(self.parent_id, attrs["search_space"], "search_space.json")
        return self.parent_id

    def _logged_trials(self) -> set[int]:
        numbers, token = set(), None
        while True:
            page = self.client.search_runs([self.tracker.experiment_id],
                                           f"tags.`mlflow.parentRunId` = '{self.parent_id}'",
                                           max_results=1000, page_token=token)
            numbers.update(int(r.data.tags[TRIAL_TAG]) for r in page if TRIAL_TAG in r.data.tags)
            token = page.token
            if not token:
                return numbers

    def log_trial(self, trial: Any, metric: str) -> None:
        """Log one finished trial as a nested run (idempotent)."""
        if trial.number in self.logged or trial.state.name not in STATUS or trial.user_attrs.get(SURPLUS):
            return
        try:
            self._log_trial(trial, metric)
        except Exception as exc:  # noqa: BLE001 - tracking must never cost a trial
            _warn(exc)

    def _log_trial(self, trial: Any, metric: str) -> None:
        from mlflow.entities import Metric, Param, RunTag

        tags = {"mlflow.parentRunId": self.parent_id, "mlflow.runName": f"trial {trial.number}",
                TRIAL_TAG: str(trial.number), "state": trial.state.name}
        for key in ("error", "worker"):
            if key in trial.user_attrs:
                tags[key] = str(trial.user_attrs[key])
        run_id = self.client.create_run(self.tracker.experiment_id, start_time=_ms(trial.datetime_start),
                                        tags=tags).info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(f"valid_{metric}_epoch", float(v), now, int(step))
                   for step, v in sorted(trial.intermediate_values.items())]
        metrics += [Metric(f"valid_{metric}_fold", float(v), now, int(fold))
                    for fold, v in trial.user_attrs.get("fold_scores", {}).items()]
        if trial.value is not None:
            metrics.append(Metric(f"valid_{metric}", float(trial.value), now, 0))
        if trial.duration is not None:
            metrics.append(Metric("trial_seconds", trial.duration.total_seconds(), now, 0))
        self.client.log_batch(run_id, metrics=metrics,
                              params=[Param(k, str(v)) for k, v in trial.params.items()],
                              tags=[RunTag("trial_number", str(trial.number))])
        self.client.set_terminated(run_id, STATUS[trial.state.name], end_time=_ms(trial.datetime_complete))
        # another process (a second `musicbench tune` on the study) may have logged it too
        self.tracker.dedupe(f"tags.`mlflow.parentRunId` = '{self.parent_id}' and tags.`{TRIAL_TAG}` = "
                            f"'{trial.number}'", run_id)
        self.logged.add(trial.number)

    def sync(self, study: Any, metric: str) -> None:
        """Log every finished trial of the study not logged yet (other workers' too)."""
        for trial in study.get_trials(deepcopy=False):
            self.log_trial(trial, metric)

    def finish(self, study: Any, metric: str) -> None:
        """Catch up on trials, record the best parameters, and close the parent run."""
        from mlflow.entities import Metric, RunTag
        from optuna.trial import TrialState

        try:
            self.sync(study, metric)
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if complete:
                best = study.best_trial
                self.client.log_batch(
                    self.parent_id,
                    metrics=[Metric(f"best_valid_{metric}", float(best.value),
                                    int(time.time() * 1000), len(study.trials))],
                    tags=[RunTag(f"best.{k}", str(v)) for k, v in best.params.items()]
                    + [RunTag("best_trial", str(best.number)),
                       RunTag("n_trials", str(len(study.trials)))],
                )
                self.client.log_dict(self.parent_id, {"trial": best.number, "value": best.value,
                                                      "params": best.params}, "best_params.json")
            self.client.set_terminated(self.parent_id, "FINISHED")
        except Exception as exc:  # noqa: BLE001 - tracking must never cost the study
            _warn(exc)
