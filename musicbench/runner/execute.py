"""Running cells: ``run_cell`` fits one planned cell and scores it under each of its
deformations; the ``Runner`` plans a suite, skips finished records, has an executor
(``runner.executors``) run the rest and is the one writer of the results store and of
MLflow.

A cell that raises is recorded as failed with its error and the run goes on; failed
records are retried by the next run.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from musicbench.augment import validate_spec
from musicbench.errors import DataError
from musicbench.features import Extractor, FeatureCache, extract_frames
from musicbench.features.extract import extraction_seconds
from musicbench.protocol.experiment import TaskSource, fit, open_clips, score
from musicbench.protocol.metrics import primary_metric
from musicbench.results import CellRecord, ResultStore
from musicbench.results.claims import Claims
from musicbench.results.tracking import TrackingQueue
from musicbench.runner import memo
from musicbench.runner.cost import inference_cost
from musicbench.runner.executors import Executor, make_executor
from musicbench.runner.options import RunOptions
from musicbench.runner.plan import CellPlan, plan_task
from musicbench.runner.suite import Suite
from musicbench.runner.validate import Validated, open_tracking, validate_run
from musicbench.runtime import atomic_write, sweep_orphaned_writes
from musicbench.tasks import ClipData, get_task


@dataclass
class CellOutcome:
    """What running a cell produced: one record per deformation asked for, and the
    per-track predictions CSV of each record that has one (record key -> text)."""

    records: list[CellRecord]
    predictions: dict[str, str]


def predictions_csv(data: ClipData, scores, kind: str) -> str:
    """Per track: label, prediction and every score column; a clustering's prediction is the
    clip's cluster number, never a class name."""
    df = pd.DataFrame({"track_id": [c.track_id for c in data.clips]})
    if data.kind == "regression":  # each target's annotated and predicted value
        for j, target in enumerate(data.classes):
            df[f"target:{target}"] = [c.label[j] for c in data.clips]
            df[f"prediction:{target}"] = scores[:, j]
        return df.to_csv(index=False, float_format="%.6g")
    if kind == "clustering":
        df["label"] = [c.label for c in data.clips]
        df["cluster"] = scores.argmax(axis=1)
        return df.to_csv(index=False)
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
    rec.details = {"traceback": "".join(traceback.format_exception(exc))}
    rec.finished_at = datetime.now(UTC).isoformat()
    return rec


def run_cell(plan: CellPlan, deforms: list[str]) -> CellOutcome:
    """Fit once for the plan's (fold, system, seed, augmentation); score the test part
    under each of ``deforms``. Errors become failed records, never exceptions."""
    out = CellOutcome([], {})
    try:
        clipset = open_clips(plan.source)
        est = plan.build()
        aug = None if plan.augment == "none" else validate_spec(plan.augment)
        vocab = plan.fold.vocabulary
        x0 = extraction_seconds()
        train_ids, valid_ids = plan.fit_ids
        fit_seconds = fit(est, clipset.part(train_ids, augment=aug, vocabulary=vocab),
                          clipset.part(valid_ids, vocabulary=vocab), plan.seed)
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
            cost, breakdown = inference_cost(est, test, scored.seconds - extract)
            for k, v in cost.items():
                setattr(rec, k, v)
            rec.details = {**details, "training": training, "cost": breakdown}
            rec.fit_seconds = round(fit_seconds - fit_extract, 4)
            rec.predict_seconds = round(scored.seconds - extract, 4)
            rec.extract_seconds = round(fit_extract + extract, 4)
            rec.classes = list(test.classes)
            rec.predictions = f"predictions/{rec.cell_key}.csv"
            out.predictions[rec.cell_key] = predictions_csv(test, scored.scores, plan.kind)
            rec.status, rec.error = "ok", None
            rec.finished_at = datetime.now(UTC).isoformat()
        except Exception as exc:  # one broken cell must not stop the others
            rec = _failed(rec, exc)
        out.records.append(rec)
    return out


class Runner:
    """Plans the suite's cells, skips finished ones, extracts every clip the rest need
    in one pass, then hands them to the executor, claiming each before it is computed
    (``musicbench.results.claims``), and writes each outcome as it arrives. Cells that
    another run holds a live claim on are waited for, and taken over if that run dies.
    """

    POLL_SECONDS = 1.0  # how often cells claimed by another run are looked at again

    def __init__(self, suite: Suite, opts: RunOptions):
        self.suite, self.opts = suite, opts
        self.store = ResultStore(opts.out)
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self._tracking: TrackingQueue | None = None
        self._claims: Claims | None = None

    def log(self, msg: str) -> None:
        if not self.opts.quiet:
            print(msg, file=sys.stderr, flush=True)

    def sources(self) -> list[TaskSource]:
        allow_partial = self.opts.allow_partial or self.suite.allow_partial
        return [TaskSource(ref, self.opts.data_home, self.opts.index_dir, allow_partial,
                           self.opts.on_bad_track or self.suite.on_bad_track, self.opts.verify)
                for ref in self.suite.tasks]

    def validate(self) -> Validated:
        """Bad input fails before any work, and before anything is written (the tracking
        store is checked in ``run``, once it is known that something will be logged).
        Returns the sources to run (a ``skip_absent`` suite's tasks whose data is here),
        with the systems and splits planning uses."""
        return validate_run(self.suite, self.sources(), self.opts.device, self.log)

    def run(self) -> ResultStore:
        finished = memo.finished(self.store, self.suite, self.opts)
        if finished is not None:
            self.counts["skipped"] = finished
            return self.store
        validated = self.validate()
        sources = validated.sources
        items = [item for source in sources
                 for item in plan_task(self.suite, source, self.opts.device, self.log, validated)]
        tracker = None
        if self.opts.track and self._logs_anything(items):  # still before anything is written
            tracker = open_tracking(self.suite.name, self.opts.tracking_uri)
        if len(sources) == len(self.suite.tasks) and all(isinstance(i, CellPlan) for i in items):
            files, folders = memo.inputs_of([open_clips(s) for s in sources])
            memo.write(self.suite, self.opts,
                       [k for plan in items for k in plan.keys.values()], files, folders)
        sweep_orphaned_writes(self.opts.out)  # a killed run's half-written files
        self.store.begin_run([get_task(s.ref).ref for s in sources], self.suite.systems,
                             self.suite.protocols, self.suite.seeds)
        opts = self.opts
        executor = make_executor(opts.executor, opts.jobs, opts.scheduler,
                                 gpu=opts.device.startswith("cuda"), log=self.log)
        self._claims = Claims(opts.out)
        if tracker is not None:
            self._tracking = TrackingQueue(tracker, self.store.save, self.log)
        try:
            with executor, self._claims:
                try:
                    work = self._plan(items)
                    extract_for(work, opts.jobs, self.log)
                    self._execute(work, executor)
                finally:  # drained while the claims are held: another run never logs them too
                    if self._tracking is not None:
                        self._tracking.close()
        finally:
            self.store.write_csv()
        return self.store

    def _logs_anything(self, items: list[CellPlan | CellRecord]) -> bool:
        """Whether the run has a record for MLflow: a cell to compute, a task that did not
        resolve, or a finished record not logged yet. A rerun with nothing to do never
        opens (or imports) MLflow."""
        for item in items:
            if isinstance(item, CellRecord) or self._todo(item):
                return True
            if any(r is not None and not r.mlflow_run_id for r in map(self.store.load, item.keys.values())):
                return True
        return False

    def _plan(self, items: list[CellPlan | CellRecord]) -> list[CellPlan]:
        """The cells with a record left to compute; failed records of what did not resolve
        are written at once, finished ones are counted (and logged if they are not yet)."""
        work = []
        for item in items:
            if isinstance(item, CellRecord):
                self._finish(item, f"{item.task}:{item.version} {item.protocol} {item.system} "
                                   f"seed {item.seed}")
            elif self._todo(item):
                work.append(item)
            else:
                self._skip(item)
        return work

    def _todo(self, plan: CellPlan) -> list[str]:
        """The deformations of ``plan`` without a finished record (with ``retry_failed``:
        only those whose latest attempt failed)."""
        return [d for d, key in plan.keys.items() if not self.store.is_done(key)
                and not (self.opts.retry_failed and self.store.load(key) is None)]

    def _skip(self, plan: CellPlan) -> None:
        """Count a finished cell, and log whatever of it MLflow lacks (under its claim, so
        two runs never log it together)."""
        recs = [self.store.load(key) for key in plan.keys.values()]
        self.counts["skipped"] += sum(1 for r in recs if r is not None and r.ok)  # not: never run
        unlogged = [r for r in recs if r is not None and not r.mlflow_run_id]
        if self._tracking is None or not unlogged or not self._claims.acquire(plan.claim_key):
            return
        unlogged = [r for r in map(self.store.load, plan.keys.values()) if r and not r.mlflow_run_id]
        self._log_records(plan, unlogged)

    def _execute(self, work: list[CellPlan], executor: Executor) -> None:
        pending, waiting, running = deque(work), [], {}
        retry_at = 0.0
        while pending or waiting or running:
            if waiting and time.monotonic() >= retry_at:
                pending.extend(waiting)
                waiting = []
            while pending and len(running) < executor.slots:
                plan = pending.popleft()
                if not self._claims.acquire(plan.claim_key):
                    waiting.append(plan)  # another run computes it: look again later
                    retry_at = time.monotonic() + self.POLL_SECONDS
                    continue
                todo = self._todo(plan)  # finished by another run before the claim was taken
                if not todo:
                    self._claims.release(plan.claim_key)
                    self._skip(plan)
                    continue
                self.counts["skipped"] += len(plan.keys) - len(todo)
                running[plan.claim_key] = (plan, todo)
                executor.submit(plan.claim_key, run_cell, plan, todo, gpu=plan.device.startswith("cuda"))
            if running:
                for key, result in executor.wait(timeout=self.POLL_SECONDS if waiting else None):
                    plan, todo = running.pop(key)
                    if not isinstance(result, CellOutcome):  # the executor's failure, not the cell's
                        result = CellOutcome([_failed(plan.record(d), result) for d in todo], {})
                    self._write(plan, result)
            elif waiting:
                time.sleep(max(0.0, retry_at - time.monotonic()))

    def _write(self, plan: CellPlan, outcome: CellOutcome) -> None:
        for rec in outcome.records:
            if rec.cell_key in outcome.predictions:
                atomic_write(self.store.root / rec.predictions, outcome.predictions[rec.cell_key])
            label = plan.label + (f" deform {rec.deform}" if rec.deform != "none" else "")
            if rec.ok:
                metric = primary_metric(rec.kind)
                e2e = rec.infer_seconds_per_clip
                label += (f": {metric} {rec.metrics[metric]:.4f} (fit {rec.fit_seconds:.1f}s, "
                          f"predict {rec.predict_seconds:.1f}s"
                          + (f", {1000 * e2e:.1f} ms a clip end to end)" if e2e is not None else ")"))
            self._report(rec, label)
        self._log_records(plan, outcome.records)

    def _finish(self, rec: CellRecord, label: str) -> None:
        """Save and log a record that needs no computing (a task that did not resolve)."""
        self._report(rec, label)
        if self._tracking is not None:
            self._tracking.put(rec, [])

    def _report(self, rec: CellRecord, label: str) -> None:
        self.log(f"[ok] {label}" if rec.ok else f"[FAILED] {label}: {rec.error}")
        self.store.save(rec)
        self.counts[rec.status] += 1

    def _log_records(self, plan: CellPlan, records: list[CellRecord]) -> None:
        """Queue the records for MLflow; the cell's claim is released once they are logged."""
        if self._tracking is None or not records:
            self._claims.release(plan.claim_key)
            return
        left = [len(records)]

        def logged() -> None:
            left[0] -= 1
            if not left[0]:
                self._claims.release(plan.claim_key)

        for rec in records:
            self._tracking.put(rec, self._artifacts(rec), logged)

    def _artifacts(self, rec: CellRecord) -> list[Path]:
        artifacts = []
        if rec.predictions:
            artifacts.append(self.store.root / rec.predictions)
        cm = rec.details.get("confusion_matrix")
        if cm is not None:
            path = self.store.predictions_dir / f"{rec.cell_key}.confusion.csv"
            atomic_write(path, pd.DataFrame(cm, index=rec.classes, columns=rec.classes)
                         .to_csv(index_label="true\\predicted"))
            artifacts.append(path)
        return artifacts


def extract_for(plans: list[CellPlan], jobs: int | None, log: Callable[[str], None]) -> None:
    """Fill the feature cache for every clip the cells will read, in one parallel pass
    per task and transform (all systems' extractors together: one decode per clip),
    instead of each fold part extracting on its own inside its cell. An unreadable
    track is left to the cells that need it, which record it. Its time is logged here, not
    booked to any cell's fit or predict time."""
    needs: dict[tuple, tuple[dict[str, Extractor], dict[str, None]]] = {}
    systems: dict[str, list[Extractor]] = {}
    for plan in plans:
        sys_key = json.dumps([plan.preset, plan.overrides, plan.device], sort_keys=True, default=str)
        if sys_key not in systems:
            rate = open_clips(plan.source).task.spec.clip.sample_rate
            systems[sys_key] = (plan.estimator or plan.build()).extractors(rate)
        if not systems[sys_key]:
            continue
        fold = plan.fold
        parts = [((*fold.train, *fold.valid, *fold.test), None)]
        if plan.augment != "none":
            parts.append((plan.fit_ids[0], validate_spec(plan.augment)))
        parts += [(fold.test, validate_spec(d)) for d in plan.keys if d != "none"]
        for ids, transform in parts:
            extractors, wanted = needs.setdefault((plan.source, transform), ({}, {}))
            extractors.update({json.dumps(e.cache_config(), sort_keys=True): e for e in systems[sys_key]})
            wanted.update(dict.fromkeys(ids))
    t0, clips = time.perf_counter(), 0
    for (source, transform), (extractors, wanted) in needs.items():
        data = open_clips(source).part(list(wanted))
        clips += len(data)
        try:
            extract_frames(data, list(extractors.values()), FeatureCache(), jobs, transform, keep=False)
        except DataError as exc:
            log(f"WARNING: {exc}")
    if needs:
        log(f"features of {clips} clip(s) extracted before the cells in {time.perf_counter() - t0:.2f} s")
