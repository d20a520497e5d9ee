"""The results store of a run folder: one JSON file per cell, written atomically, with
every earlier attempt kept.

``cells/<key>.json`` is the commit record of a cell's latest attempt: it appears (by
rename) only once the cell's predictions are on disk, so an interrupted run leaves either
a whole cell or nothing. An attempt it replaces moves to ``attempts/<key>/``. Each run
appends what it asked for to ``runs.jsonl``. ``results.csv`` is rebuilt from the current
records, also atomically.

What counts is the latest attempt of each cell, less the failures that later work made
stale (``supersede``); those stay on disk and in ``attempts``, and reports count them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicbench.results.schema import CellRecord, columns
from musicbench.runtime import atomic_write

if TYPE_CHECKING:
    import pandas as pd

#: what a failed record shares with the later records that supersede it
RESOLVED = ("task", "version", "protocol", "system", "seed")
SAME_CELL = (*RESOLVED, "fold", "augment", "deform")


@dataclass(frozen=True)
class RunRequest:
    """What one run asked for (a line of ``runs.jsonl``): ``tasks`` as NAME:VERSION,
    ``protocols`` empty where each task's default was used."""

    started_at: str
    tasks: tuple[str, ...]
    systems: tuple[str, ...]
    protocols: tuple[str, ...]
    seeds: tuple[int, ...]

    def covers(self, rec: CellRecord) -> bool:
        return (f"{rec.task}:{rec.version}" in self.tasks and rec.system in self.systems
                and (not self.protocols or rec.protocol in self.protocols))


def _later(a: CellRecord, b: CellRecord) -> bool:
    return (a.finished_at or "") > (b.finished_at or "")


def _key(rec: CellRecord, fields: tuple[str, ...]) -> tuple:
    return tuple(getattr(rec, k) for k in fields)


def _why_stale(rec: CellRecord, peers: list[CellRecord], runs: Iterable[RunRequest]) -> str | None:
    """Why a failed record no longer counts, or None while it does; ``peers`` share its
    task, version, protocol, system and seed."""
    for other in peers:
        if other.cell_key == rec.cell_key or not _later(other, rec):
            continue
        if rec.fold == -1 and other.fold != -1:
            return f"its protocol was resolved later ({other.finished_at})"
        if rec.fold != -1 and _key(other, SAME_CELL) == _key(rec, SAME_CELL):
            return f"the same cell was run again on other data or parameters ({other.finished_at})"
    for run in runs:
        if run.started_at > (rec.finished_at or "") and run.covers(rec) and rec.seed not in run.seeds:
            return f"seed {rec.seed} was no longer asked for ({run.started_at})"
    return None


def supersede(records: list[CellRecord], runs: Iterable[RunRequest] = ()) -> tuple[list, list]:
    """(current, stale): a failure is stale once a later record resolves its task and
    protocol (a fold -1 record), reruns its fold on other data or parameters, or a later
    run of its task, protocol and system no longer asks for its seed. Successful records
    always count. Stale records come back with status ``superseded`` (never stored: the
    file keeps ``failed``) and the reason in ``details["superseded"]``."""
    runs = list(runs)
    peers: dict[tuple, list[CellRecord]] = {}
    for rec in records:
        peers.setdefault(_key(rec, RESOLVED), []).append(rec)
    current, stale = [], []
    for rec in records:
        why = None if rec.ok else _why_stale(rec, peers[_key(rec, RESOLVED)], runs)
        if why is None:
            current.append(rec)
        else:
            rec.status, rec.details = "superseded", {**rec.details, "superseded": why}
            stale.append(rec)
    return current, stale


class ResultStore:
    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.cells_dir = self.root / "cells"
        self.attempts_dir = self.root / "attempts"
        self.predictions_dir = self.root / "predictions"
        self.runs_path = self.root / "runs.jsonl"

    def cell_path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.json"

    def load(self, key: str) -> CellRecord | None:
        try:
            return CellRecord.from_json(self.cell_path(key).read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # impossible with atomic writes unless edited by hand
            return None

    def is_done(self, key: str) -> bool:
        rec = self.load(key)
        return rec is not None and rec.ok

    def save(self, record: CellRecord) -> None:
        """The record becomes the cell's latest attempt; an earlier attempt (another
        ``finished_at``) moves to ``attempts/<key>/``."""
        path = self.cell_path(record.cell_key)
        if path.exists():
            old = path.read_text()
            if json.loads(old).get("finished_at") != record.finished_at:
                n = len(self.attempts(record.cell_key))
                atomic_write(self.attempts_dir / record.cell_key / f"{n:04d}.json", old)
        atomic_write(path, record.to_json())

    def attempts(self, key: str) -> list[CellRecord]:
        """The earlier attempts of a cell, oldest first (the latest is ``load(key)``)."""
        folder = self.attempts_dir / key
        return [CellRecord.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def remove(self, key: str) -> None:
        """A cell's records, attempts and predictions, gone."""
        rec = self.load(key)
        self.cell_path(key).unlink(missing_ok=True)
        for p in (self.attempts_dir / key).glob("*.json"):
            p.unlink()
        if (self.attempts_dir / key).is_dir():
            (self.attempts_dir / key).rmdir()
        if rec and rec.predictions:
            (self.root / rec.predictions).unlink(missing_ok=True)
        (self.predictions_dir / f"{key}.confusion.csv").unlink(missing_ok=True)

    def begin_run(self, tasks: Iterable[str], systems: Iterable[str], protocols: Iterable[str],
                  seeds: Iterable[int]) -> None:
        """Note what a run asks for, so that failures of seeds it no longer asks for go stale."""
        line: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "tasks": list(tasks),
                                "systems": list(systems), "protocols": list(protocols),
                                "seeds": list(seeds)}
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.runs_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def runs(self) -> list[RunRequest]:
        if not self.runs_path.exists():
            return []
        return [RunRequest(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(x).items()})
                for x in self.runs_path.read_text().splitlines() if x.strip()]

    def all_records(self) -> list[CellRecord]:
        """The latest attempt of every cell, stale or not."""
        if not self.cells_dir.is_dir():
            return []
        recs = [CellRecord.from_json(p.read_text()) for p in sorted(self.cells_dir.glob("*.json"))]
        return sorted(recs, key=lambda r: (r.task, r.protocol, r.system, r.fold, r.seed, r.augment,
                                           r.deform))

    def current(self) -> tuple[list[CellRecord], list[CellRecord]]:
        """(records that count, stale records): see ``supersede``."""
        return supersede(self.all_records(), self.runs())

    def records(self) -> list[CellRecord]:
        """The records that count: each cell's latest attempt, less stale failures."""
        return self.current()[0]

    def table(self) -> pd.DataFrame:
        import pandas as pd  # here: a rerun with nothing to do reads records, never a table

        return pd.DataFrame([r.row() for r in self.records()], columns=columns())

    def write_csv(self) -> Path:
        path = self.root / "results.csv"
        atomic_write(path, self.table().to_csv(index=False))
        return path
