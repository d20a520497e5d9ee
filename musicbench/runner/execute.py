"""The runner: expands a suite into cells and runs those not already finished.

A cell is task x protocol x fold x system x seed. Its key hashes everything that
defines it (task spec, split hash, fold, system family and full parameters, seed, code
version), so a rerun skips finished cells and recomputes only what is missing. A cell
that raises is recorded as failed with its error and the run goes on; failed cells are
retried by the next run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import musicbench
from musicbench.augment import validate_spec
from musicbench.errors import MusicbenchError
from musicbench.protocol.metrics import evaluate, primary_metric
from musicbench.protocol.splits import Fold, Split, parse_protocol, resolve
from musicbench.runner.store import ResultStore
from musicbench.runner.suite import Suite
from musicbench.runtime import atomic_write, check_device, seed_everything
from musicbench.systems import build_system, get_preset
from musicbench.tasks import ClipData, ClipSet, get_task


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



def cell_key(**parts: Any) -> str:
    payload = json.dumps({**parts, "code": musicbench.__version__}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


def _log(opts: RunOptions, msg: str) -> None:
    if not opts.quiet:
        print(msg, file=sys.stderr, flush=True)


def _predictions_csv(data: ClipData, scores: np.ndarray) -> str:
    import pandas as pd

    df = pd.DataFrame({"track_id": [c.track_id for c in data.clips]})
    if data.kind == "multiclass":
        df["label"] = [c.label for c in data.clips]
        df["prediction"] = [data.classes[i] for i in scores.argmax(axis=1)]
    else:
        df["label"] = ["|".join(c.label) for c in data.clips]
    for j, cls in enumerate(data.classes):
        df[f"score:{cls}"] = scores[:, j]
    return df.to_csv(index=False, float_format="%.6g")


class Runner:
    def __init__(self, suite: Suite, opts: RunOptions):
        self.suite, self.opts = suite, opts
        self.store = ResultStore(opts.out)
        self._tracker = None
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}

    @property
    def tracker(self):
        if self._tracker is None and self.opts.track:
            from musicbench.runner.tracking import Tracker

            self._tracker = Tracker(self.suite.name, self.opts.tracking_uri)
        return self._tracker

    def run(self) -> ResultStore:
        check_device(self.opts.device)
        for spec in self.suite.protocols:  # malformed options fail before any work
            parse_protocol(spec)
        for spec in (*self.suite.augment, *self.suite.deform):
            if spec != "none":
                validate_spec(spec)
        for name in self.suite.systems:
            base, overrides = self.suite.resolve_system(name)
            build_system(base, device=self.opts.device, **overrides)
        for task_ref in self.suite.tasks:
            self._run_task(task_ref)
        self.store.write_csv()
        return self.store

    def _run_task(self, task_ref: str) -> None:
        task = get_task(task_ref, self.opts.data_home, self.opts.index_dir)
        protocols = self.suite.protocols or (task.spec.default_protocol,)
        allow_partial = self.opts.allow_partial or self.suite.allow_partial
        try:
            clipset = task.clips(allow_partial=allow_partial)
        except MusicbenchError as exc:
            for protocol in protocols:
                self._record_unresolved(task, protocol, exc)
            return
        if clipset.missing:
            _log(self.opts, f"{task.ref}: partial data, using {len(clipset)} of "
                            f"{clipset.n_index} tracks (--allow-partial)")
        for protocol in protocols:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    split = resolve(protocol, clipset)
                for w in caught:
                    _log(self.opts, f"WARNING: {w.message}")
            except MusicbenchError as exc:
                self._record_unresolved(task, protocol, exc)
                continue
            for fold in split.folds:
                for system in self.suite.systems:
                    for seed in self.suite.seeds:
                        for augment in self.suite.augment:
                            self._run_cell(clipset, split, fold, system, seed, augment)

    def _base_record(self, task, protocol: str, system: str, seed: int) -> dict[str, Any]:
        tuned = self.suite.tuned.get(system)
        return {"task": task.name, "version": task.version, "protocol": protocol,
                "system": system, "seed": seed, "device": self.opts.device,
                "tuned": bool(tuned), "tuned_study": (tuned or {}).get("study"),
                "tuned_trials": (tuned or {}).get("trials"),
                "finished_at": None, "mlflow_run_id": None}

    def _record_unresolved(self, task, protocol: str, exc: Exception) -> None:
        _log(self.opts, f"FAILED {task.ref} {protocol}: {exc}")
        for system in self.suite.systems:
            for seed in self.suite.seeds:
                rec = self._base_record(task, protocol, system, seed)
                key = cell_key(task=task.ref, protocol=protocol, system=system, seed=seed,
                               unresolved=True)
                rec.update(cell_key=key, fold=-1, split_hash="", status="failed",
                           augment="none", deform="none",
                           error=f"{type(exc).__name__}: {exc}",
                           finished_at=datetime.now(UTC).isoformat())
                self.store.save(rec)
                self.counts["failed"] += 1

    def _run_cell(self, clipset: ClipSet, split: Split, fold: Fold, system: str,
                  seed: int, augment: str) -> None:
        """Fit once for (fold, system, seed, augment); evaluate under every deformation."""
        task = clipset.task
        base, overrides = self.suite.resolve_system(system)
        preset = get_preset(base)
        est = build_system(base, seed=seed, device=self.opts.device, **overrides)
        params = {k: v for k, v in est.get_params().items() if k not in ("seed", "device")}
        spec = {k: v for k, v in asdict(task.spec).items() if k != "path"}
        keys = {
            deform: cell_key(task=spec, version=task.version, protocol=split.protocol,
                             split_hash=split.hash, fold=fold.index, system=system,
                             preset=base, family=preset["family"], params=params, seed=seed,
                             augment=augment, deform=deform)
            for deform in self.suite.deform
        }
        todo = [d for d, k in keys.items() if not self.store.is_done(k)]
        for deform, key in keys.items():
            if deform not in todo:
                self.counts["skipped"] += 1
                self._ensure_logged(self.store.load(key), params)
        if not todo:
            return

        def record(deform: str) -> dict[str, Any]:
            rec = self._base_record(task, split.protocol, system, seed)
            rec.update(cell_key=keys[deform], split_hash=split.hash, fold=fold.index,
                       augment=augment, deform=deform,
                       n_train=len(fold.train), n_valid=len(fold.valid), n_test=len(fold.test),
                       n_tracks_used=len(clipset), n_tracks_index=clipset.n_index,
                       group_leakage=fold.leakage, params=params)
            return rec

        base = f"{task.ref} {split.protocol} fold {fold.index} {system} seed {seed}"
        if augment != "none":
            base += f" augment {augment}"
        try:
            aug = None if augment == "none" else validate_spec(augment)
            train = clipset.part(fold.train, augment=aug)
            valid = clipset.part(fold.valid)
            seed_everything(seed)
            t0 = time.perf_counter()
            est.fit(train, valid if len(valid) else None)
            fit_seconds = time.perf_counter() - t0
            training = est.training_report()
        except Exception as exc:  # one broken cell must not stop the others
            for deform in todo:
                self._finish(record(deform), params, exc=exc, label=base)
            return
        for deform in todo:
            rec = record(deform)
            label = base + (f" deform {deform}" if deform != "none" else "")
            try:
                test = clipset.part(fold.test, deform=None if deform == "none" else validate_spec(deform))
                t1 = time.perf_counter()
                scores = np.asarray(est.predict_scores(test.without_labels()), dtype=np.float64)
                predict_seconds = time.perf_counter() - t1
                result = evaluate(task.spec.kind, test.y, scores, clipset.classes)
                pred_path = self.store.predictions_dir / f"{rec['cell_key']}.csv"
                atomic_write(pred_path, _predictions_csv(test, scores))
                details = {k: v for k, v in result.items() if isinstance(v, (dict, list))}
                rec.update({k: v for k, v in result.items() if k not in details})
                details["training"] = training
                rec.update(fit_seconds=round(fit_seconds, 4),
                           predict_seconds=round(predict_seconds, 4), classes=clipset.classes,
                           details=details,
                           predictions=str(pred_path.relative_to(self.store.root)))
                metric = primary_metric(task.spec.kind)
                label += (f": {metric} {rec[metric]:.4f} (fit {fit_seconds:.1f}s, "
                          f"predict {predict_seconds:.1f}s)")
                self._finish(rec, params, label=label)
            except Exception as exc:  # one broken cell must not stop the others
                self._finish(rec, params, exc=exc, label=label)

    def _finish(self, rec: dict[str, Any], params: dict[str, Any], label: str,
                exc: Exception | None = None) -> None:
        if exc is None:
            rec.update(status="ok", error=None)
            _log(self.opts, f"[ok] {label}")
        else:
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                       details={"traceback": traceback.format_exc()})
            _log(self.opts, f"[FAILED] {label}: {type(exc).__name__}: {exc}")
        rec["finished_at"] = datetime.now(UTC).isoformat()
        self.store.save(rec)
        self.counts[rec["status"]] += 1
        self._ensure_logged(rec, params)

    def _ensure_logged(self, rec: dict[str, Any], params: dict[str, Any]) -> None:
        """Log a cell to MLflow once; a tracking failure is reported, results are kept."""
        if not self.opts.track or rec.get("mlflow_run_id"):
            return
        artifacts = []
        if rec.get("predictions"):
            artifacts.append(self.store.root / rec["predictions"])
        cm = rec.get("details", {}).get("confusion_matrix")
        if cm is not None:
            import pandas as pd

            path = self.store.predictions_dir / f"{rec['cell_key']}.confusion.csv"
            atomic_write(path, pd.DataFrame(cm, index=rec["classes"], columns=rec["classes"])
                         .to_csv(index_label="true\\predicted"))
            artifacts.append(path)
        try:
            rec["mlflow_run_id"] = self.tracker.log_cell(rec, params, artifacts)
        except Exception as exc:  # noqa: BLE001 - tracking must never cost a result
            _log(self.opts, f"WARNING: MLflow logging failed for {rec['cell_key']}: {exc}")
            return
        self.store.save(rec)
