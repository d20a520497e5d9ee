"""Running cells: ``run_cell`` fits one planned cell and scores it under each of its
deformations; the ``Runner`` plans a suite, skips finished records, runs the rest and is
the one writer of the results store and of MLflow.

A cell that raises is recorded as failed with its error and the run goes on; failed
records are retried by the next run.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from musicbench.augment import validate_spec
from musicbench.features.extract import extraction_seconds
from musicbench.protocol.experiment import TaskSource, fit, open_clips, score
from musicbench.protocol.metrics import primary_metric
from musicbench.results import CellRecord, ResultStore
from musicbench.runner.plan import CellPlan, plan_task
from musicbench.runner.suite import Suite
from musicbench.runner.validate import validate_run
from musicbench.runtime import atomic_write
from musicbench.systems import build_system
from musicbench.tasks import ClipData, get_task


@dataclass
class RunOptions:
    out: Path
    data_home: str | None = None
    index_dir: str | None = None
    allow_partial: bool = False
    tracking_uri: str | None = None
    track: bool = True
    device: str = "cpu"
    quiet: bool = False
    on_bad_track: str | None = None  # None: the suite's, then each task's setting
    verify: bool = False  # md5 of every audio file against the index before the run
    retry_failed: bool = False  # run only cells whose latest attempt failed


@dataclass
class CellOutcome:
    """What running a cell produced: one record per deformation asked for, and the
    per-track predictions CSV of each record that has one (record key -> text)."""

    records: list[CellRecord]
    predictions: dict[str, str]


def predictions_csv(data: ClipData, scores) -> str:
    df = pd.DataFrame({"track_id": [c.track_id for c in data.clips]})
    if data.kind == "multiclass":
        df["label"] = [c.label for c in data.clips]
        df["prediction"] = [data.classes[i] for i in scores.argmax(axis=1)]
    else:
        df["label"] = ["|".join(c.label) for c in data.clips]
    for j, cls in enumerate(data.classes):
        df[f"score:{cls}"] = scores[:, j]
    return df.to_csv(index=False, float_format="%.6g")


def _failed(rec: CellRecord, exc: BaseException) -> CellRecord:
    rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
    rec.details = {"traceback": traceback.format_exc()}
    rec.finished_at = datetime.now(UTC).isoformat()
    return rec


def run_cell(plan: CellPlan, deforms: list[str]) -> CellOutcome:
    """Fit once for the plan's (fold, system, seed, augmentation); score the test part
    under each of ``deforms``. Errors become failed records, never exceptions."""
    out = CellOutcome([], {})
    try:
        clipset = open_clips(plan.source)
        est = build_system(plan.preset, seed=plan.seed, device=plan.device, **plan.overrides)
        aug = None if plan.augment == "none" else validate_spec(plan.augment)
        vocab = plan.fold.vocabulary
        x0 = extraction_seconds()
        fit_seconds = fit(est, clipset.part(plan.fold.train, augment=aug, vocabulary=vocab),
                          clipset.part(plan.fold.valid, vocabulary=vocab), plan.seed)
        fit_extract = extraction_seconds() - x0
        training = est.training_report()
    except Exception as exc:  # one broken cell must not stop the others
        out.records = [_failed(plan.record(d), exc) for d in deforms]
        return out
    for deform in deforms:
        rec = plan.record(deform)
        try:
            test = clipset.part(plan.fold.test, deform=None if deform == "none" else validate_spec(deform),
                                vocabulary=vocab)
            x0 = extraction_seconds()
            scored = score(est, test)
            extract = extraction_seconds() - x0
            details = {k: v for k, v in scored.result.items() if isinstance(v, (dict, list))}
            rec.metrics = {k: v for k, v in scored.result.items() if k not in details}
            rec.details = {**details, "training": training}
            rec.fit_seconds = round(fit_seconds - fit_extract, 4)
            rec.predict_seconds = round(scored.seconds - extract, 4)
            rec.extract_seconds = round(fit_extract + extract, 4)
            rec.classes = list(test.classes)
            rec.predictions = f"predictions/{rec.cell_key}.csv"
            out.predictions[rec.cell_key] = predictions_csv(test, scored.scores)
            rec.status, rec.error = "ok", None
            rec.finished_at = datetime.now(UTC).isoformat()
        except Exception as exc:  # one broken cell must not stop the others
            rec = _failed(rec, exc)
        out.records.append(rec)
    return out


class Runner:
    def __init__(self, suite: Suite, opts: RunOptions):
        self.suite, self.opts = suite, opts
        self.store = ResultStore(opts.out)
        self._tracker = None
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}

    @property
    def tracker(self):
        if self._tracker is None and self.opts.track:
            from musicbench.results.tracking import Tracker

            self._tracker = Tracker(self.suite.name, self.opts.tracking_uri)
        return self._tracker

    def log(self, msg: str) -> None:
        if not self.opts.quiet:
            print(msg, file=sys.stderr, flush=True)

    def sources(self) -> list[TaskSource]:
        allow_partial = self.opts.allow_partial or self.suite.allow_partial
        return [TaskSource(ref, self.opts.data_home, self.opts.index_dir, allow_partial,
                           self.opts.on_bad_track or self.suite.on_bad_track, self.opts.verify)
                for ref in self.suite.tasks]

    def validate(self) -> None:
        """Bad input fails before any work, and before anything is written."""
        validate_run(self.suite, self.sources(), self.opts.device, self.opts.track, self.opts.tracking_uri)

    def run(self) -> ResultStore:
        self.validate()
        self.store.begin_run([get_task(s.ref).ref for s in self.sources()], self.suite.systems,
                             self.suite.protocols, self.suite.seeds)
        for source in self.sources():
            for item in plan_task(self.suite, source, self.opts.device, self.log):
                if isinstance(item, CellRecord):
                    self._finish(item, f"{item.task}:{item.version} {item.protocol} {item.system} "
                                       f"seed {item.seed}")
                else:
                    self._run(item)
        self.store.write_csv()
        return self.store

    def _run(self, plan: CellPlan) -> None:
        todo = []
        for deform, key in plan.keys.items():
            done = self.store.load(key)
            if done is None and self.opts.retry_failed:
                continue
            if done is not None and done.ok:
                self.counts["skipped"] += 1
                self._ensure_logged(done)
            else:
                todo.append(deform)
        if not todo:
            return
        outcome = run_cell(plan, todo)
        for rec in outcome.records:
            if rec.cell_key in outcome.predictions:
                atomic_write(self.store.root / rec.predictions, outcome.predictions[rec.cell_key])
            label = plan.label + (f" deform {rec.deform}" if rec.deform != "none" else "")
            if rec.ok:
                metric = primary_metric(rec.kind)
                label += (f": {metric} {rec.metrics[metric]:.4f} (fit {rec.fit_seconds:.1f}s, "
                          f"predict {rec.predict_seconds:.1f}s)")
            self._finish(rec, label)

    def _finish(self, rec: CellRecord, label: str) -> None:
        if rec.ok:
            self.log(f"[ok] {label}")
        else:
            self.log(f"[FAILED] {label}: {rec.error}")
        self.store.save(rec)
        self.counts[rec.status] += 1
        self._ensure_logged(rec)

    def _ensure_logged(self, rec: CellRecord) -> None:
        """Log a cell to MLflow once; a tracking failure is reported, results are kept."""
        if not self.opts.track or rec.mlflow_run_id:
            return
        artifacts = []
        if rec.predictions:
            artifacts.append(self.store.root / rec.predictions)
        cm = rec.details.get("confusion_matrix")
        if cm is not None:
            path = self.store.predictions_dir / f"{rec.cell_key}.confusion.csv"
            atomic_write(path, pd.DataFrame(cm, index=rec.classes, columns=rec.classes)
                         .to_csv(index_label="true\\predicted"))
            artifacts.append(path)
        try:
            rec.mlflow_run_id = self.tracker.log_cell(rec, artifacts)
        except Exception as exc:  # noqa: BLE001 - tracking must never cost a result
            self.log(f"WARNING: MLflow logging failed for {rec.cell_key}: {exc}")
            return
        self.store.save(rec)
