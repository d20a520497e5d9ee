"""The results store of a run folder: one JSON file per cell, written atomically.

``cells/<key>.json`` is the commit record of a cell: it appears (by rename) only once the
cell's predictions are on disk, so an interrupted run leaves either a whole cell or
nothing. ``results.csv`` is rebuilt from the cell files, also atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from musicbench.results.schema import CellRecord, columns
from musicbench.runtime import atomic_write


class ResultStore:
    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.cells_dir = self.root / "cells"
        self.predictions_dir = self.root / "predictions"

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
        atomic_write(self.cell_path(record.cell_key), record.to_json())

    def records(self) -> list[CellRecord]:
        if not self.cells_dir.is_dir():
            return []
        recs = [CellRecord.from_json(p.read_text()) for p in sorted(self.cells_dir.glob("*.json"))]
        return sorted(recs, key=lambda r: (r.task, r.protocol, r.system, r.fold, r.seed, r.augment,
                                           r.deform))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([r.row() for r in self.records()], columns=columns())

    def write_csv(self) -> Path:
        path = self.root / "results.csv"
        atomic_write(path, self.table().to_csv(index=False))
        return path
