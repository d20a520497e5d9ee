"""The results store of a run folder: one JSON file per finished cell, written atomically.

``cells/<key>.json`` is the commit record of a cell: it appears (by rename) only once the
cell's predictions are on disk, so an interrupted run leaves either a whole cell or
nothing. ``results.csv`` is rebuilt from the cell files, also atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from musicbench.runtime import atomic_write

COLUMNS = [
    "task", "version", "protocol", "split_hash", "fold", "system", "seed", "augment", "deform",
    "status",
    "n_train", "n_valid", "n_test", "n_tracks_used", "n_tracks_index", "group_leakage",
    "fit_seconds", "predict_seconds", "accuracy", "balanced_accuracy", "macro_f1",
    "roc_auc_macro", "pr_auc_macro", "n_tags_dropped", "tuned", "tuned_study", "tuned_trials", "device",
    "error",
    "cell_key", "mlflow_run_id", "finished_at",
]



class ResultStore:
    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.cells_dir = self.root / "cells"
        self.predictions_dir = self.root / "predictions"

    def cell_path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.cell_path(key).read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # impossible with atomic writes unless edited by hand
            return None

    def is_done(self, key: str) -> bool:
        rec = self.load(key)
        return rec is not None and rec.get("status") == "ok"

    def save(self, record: dict[str, Any]) -> None:
        atomic_write(self.cell_path(record["cell_key"]), json.dumps(record, indent=1))

    def records(self) -> list[dict[str, Any]]:
        if not self.cells_dir.is_dir():
            return []
        recs = [json.loads(p.read_text()) for p in sorted(self.cells_dir.glob("*.json"))]
        return sorted(recs, key=lambda r: (r["task"], r["protocol"], r["system"], r["fold"],
                                           r["seed"], r.get("augment", ""), r.get("deform", "")))

    def table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.records())
        for col in COLUMNS:
            if col not in df:
                df[col] = None
        return df[COLUMNS]

    def write_csv(self) -> Path:
        path = self.root / "results.csv"
        atomic_write(path, self.table().to_csv(index=False))
        return path
