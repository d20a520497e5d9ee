"""Planning a run: a suite expanded into cells, each a self-contained, picklable unit of
work (``CellPlan``) that any process can run given only the plan.

A cell is task x protocol x fold x system x seed x augmentation; it is fitted once and
scored under every test-time deformation, each of which is its own record with its own
key. A key hashes everything that defines the record (task spec, split hash, fold, tuning,
system family and full parameters, seed, augmentation, deformation, code version), so a
rerun skips finished records and recomputes only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import musicbench
from musicbench.errors import ConfigError, MusicbenchError
from musicbench.protocol.experiment import TaskSource, open_clips, resolve_split
from musicbench.protocol.splits import Fold
from musicbench.results import CellRecord
from musicbench.runner.suite import Suite
from musicbench.runner.validate import Validated
from musicbench.systems import System, build_system, get_preset
from musicbench.tasks import ClipSet, get_task

Log = Callable[[str], None]


def cell_key(**parts: Any) -> str:
    payload = json.dumps({**parts, "code": musicbench.__version__}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CellPlan:
    """Everything that defines one fit and its scorings, and nothing live (no clips, no
    fitted model): a worker re-opens the task from ``source`` and fits a copy of
    ``estimator``, the system built (and validated) when the cell was planned."""

    source: TaskSource
    task: str  # task name, version: what records say
    version: str
    kind: str  # what the records are scored as: the task's kind, or the system's evaluation
    protocol: str
    split_hash: str
    fold: Fold
    system: str  # the suite's name for it (a preset, or a named variant of one)
    preset: str
    overrides: dict[str, Any]
    params: dict[str, Any]  # every parameter of the built system but seed and device
    seed: int
    augment: str
    keys: dict[str, str]  # deformation -> record key
    device: str = "cpu"
    tuned: dict[str, Any] = field(default_factory=dict)  # {"study": .., "trials": ..} when tuned
    merge_valid: bool = False  # the system learns nothing from a validation part: fit on both
    estimator: System | None = field(default=None, compare=False)
    clips: dict[str, Any] = field(default_factory=dict)  # what records say of the clip set

    def build(self) -> System:
        """A fresh, unfitted copy of the planned system with the cell's seed."""
        from sklearn.base import clone

        if self.estimator is None:
            return build_system(self.preset, seed=self.seed, device=self.device, **self.overrides)
        return clone(self.estimator).set_params(seed=self.seed)

    @property
    def fit_ids(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The track ids the system is fitted on, and those it validates on."""
        if self.merge_valid:
            return (*self.fold.train, *self.fold.valid), ()
        return self.fold.train, self.fold.valid

    @property
    def label(self) -> str:
        text = (f"{self.task}:{self.version} {self.protocol} fold {self.fold.index} {self.system} "
                f"seed {self.seed}")
        return text + (f" augment {self.augment}" if self.augment != "none" else "")

    @property
    def claim_key(self) -> str:
        """What runs sharing a results folder claim before computing the cell: one key
        for the fit and all its scorings."""
        return cell_key(records=sorted(self.keys.values()))

    def record(self, deform: str) -> CellRecord:
        """The record of one scoring, before it has a status."""
        return CellRecord(
            cell_key=self.keys[deform], task=self.task, version=self.version, protocol=self.protocol,
            system=self.system, seed=self.seed, fold=self.fold.index, split_hash=self.split_hash,
            augment=self.augment, deform=deform, kind=self.kind, device=self.device,
            tuned=bool(self.tuned), tuned_study=self.tuned.get("study"),
            tuned_trials=self.tuned.get("trials"), tuned_kind=self.tuned.get("kind"), params=self.params,
            n_train=len(self.fit_ids[0]), n_valid=len(self.fit_ids[1]), n_test=len(self.fold.test),
            group_leakage=self.fold.leakage, **(self.clips or clip_counts(open_clips(self.source))),
        )


def clip_counts(clips: ClipSet) -> dict[str, Any]:
    """What every record of a task says of its clip set."""
    return {"n_tracks_used": len(clips), "n_tracks_index": clips.n_index, "n_bad_tracks": len(clips.bad),
            "bad_tracks": " ".join(sorted(clips.bad)) or None}


def unresolved_records(suite: Suite, task: Any, protocol: str, exc: Exception,
                       device: str) -> list[CellRecord]:
    """Failed records for every system and seed of a task or protocol that did not resolve."""
    now = datetime.now(UTC).isoformat()
    return [CellRecord(cell_key=cell_key(task=task.ref, protocol=protocol, system=system, seed=seed,
                                         unresolved=True),
                       task=task.name, version=task.version, protocol=protocol, system=system, seed=seed,
                       kind=task.spec.kind, device=device, status="failed",
                       error=f"{type(exc).__name__}: {exc}", finished_at=now,
                       **_tuned_fields(suite, system))
            for system in suite.systems for seed in suite.seeds]


def _tuned_fields(suite: Suite, system: str) -> dict[str, Any]:
    tuned = suite.tuned.get(system) or {}
    return {"tuned": bool(tuned), "tuned_study": tuned.get("study"), "tuned_trials": tuned.get("trials"),
            "tuned_kind": tuned.get("kind")}


def fold_params(tuned: dict[str, Any], split_protocol: str, split_hash: str, fold: int) -> dict[str, Any]:
    """The parameters a per-fold tuned system (``tune --per-fold``) uses on ``fold``: those
    its own fold's study chose; none for other systems. A family tuned on another split
    answers for other folds and is refused."""
    if "per_fold" not in tuned:
        return {}
    if tuned["split_hash"] != split_hash:
        raise ConfigError(f"--tuned {tuned['study']!r}: its studies were tuned per fold of "
                          f"{tuned['protocol']} (split {tuned['split_hash']}), but {split_protocol} resolves "
                          f"to split {split_hash} here; run with --protocol {tuned['protocol']} and the same "
                          "data, or tune again")
    return dict(tuned["per_fold"][fold])


def plan_task(suite: Suite, source: TaskSource, device: str, log: Log,
              validated: Validated | None = None) -> Iterator[CellPlan | CellRecord]:
    """The cells of one task, in run order; a task or protocol that cannot be resolved
    yields failed records instead of cells. The systems and splits of ``validated`` are
    used as they are; without it (or for a system tuned per fold) they are built here."""
    validated = validated or Validated([])
    task = get_task(source.ref, source.data_home, source.index_dir)
    protocols = suite.protocols or (task.spec.default_protocol,)
    try:
        clipset = open_clips(source)
    except MusicbenchError as exc:
        log(f"FAILED {task.ref}: {exc}")
        for protocol in protocols:
            yield from unresolved_records(suite, task, protocol, exc, device)
        return
    if clipset.missing:
        log(f"{task.ref}: partial data, using {len(clipset)} of {clipset.n_index} tracks (--allow-partial)")
    if clipset.bad:
        log(f"{task.ref}: left out {len(clipset.bad)} damaged track(s) (--on-bad-track skip):\n  "
            + "\n  ".join(f"{t}: {why}" for t, why in sorted(clipset.bad.items())))
    spec, counts = task.spec.identity(), clip_counts(clipset)
    for protocol in protocols:
        try:
            resolved = validated.splits.get((source, protocol))
            if resolved is None:
                split = resolve_split(protocol, clipset, log)
            else:
                split = resolved.split
                for message in resolved.warnings:
                    log(f"WARNING: {message}")
        except MusicbenchError as exc:
            log(f"FAILED {task.ref} {protocol}: {exc}")
            yield from unresolved_records(suite, task, protocol, exc, device)
            continue
        for fold in split.folds:
            for system in suite.systems:
                preset, overrides = suite.resolve_system(system)
                tuned = dict(suite.tuned.get(system) or {})
                per_fold = fold_params(tuned, split.protocol, split.hash, fold.index)
                overrides = {**overrides, **per_fold}
                tuned.pop("per_fold", None)
                family = get_preset(preset)["family"]
                built = validated.systems.get(system) if not per_fold else None
                built = built or build_system(preset, device=device, **overrides)
                if not suite.runs(built, task.spec.kind):
                    continue
                params = built.key_params()
                merge = {} if built.uses_validation() else {"fit_on": "train+valid"}
                for seed in suite.seeds:
                    for augment in suite.augment:
                        # a tuned record belongs to its study's row even where an untuned
                        # run or another study came to the same parameters
                        tuning = {"tuned": {k: tuned.get(k) for k in ("study", "kind")}} if tuned else {}
                        keys = {deform: cell_key(task=spec, version=task.version, protocol=split.protocol,
                                                 split_hash=split.hash, fold=fold.index, system=system,
                                                 preset=preset, family=family, params=params, seed=seed,
                                                 augment=augment, deform=deform, **tuning, **merge)
                                for deform in suite.deform}
                        yield CellPlan(source, task.name, task.version,
                                       built.evaluation_kind(task.spec.kind), split.protocol,
                                       split.hash, fold, system, preset, overrides, params, seed, augment,
                                       keys, device, tuned, merge_valid=bool(merge), estimator=built,
                                       clips=counts)
