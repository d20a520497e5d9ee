"""Read results into one table: from run folders (the results store) or from MLflow.

Each row is a ``CellRecord.row()`` (the columns of ``musicbench.results.columns()`` plus
``classes``, ``details`` and ``predictions``, an absolute path to the per-track CSV or
None) and its ``source``. Both sources give the same table, so every report section works
on either.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.errors import ConfigError, DataError
from musicbench.results import CellRecord, ResultStore, columns
from musicbench.results.store import supersede

EXTRA = ["classes", "details", "predictions", "source"]


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns() + EXTRA)
    df["tuned"] = df["tuned"].fillna(False).astype(bool)
    # which tuning produced a row: none, one study shared by every fold, or one per fold
    df["tuned_kind"] = np.where(~df["tuned"], "none", df["tuned_kind"].fillna("shared"))
    return df


def _run_folders(path: Path) -> list[Path]:
    if (path / "cells").is_dir():
        return [path]
    found = sorted(p.parent for p in path.rglob("cells") if p.is_dir())
    if not found:
        raise DataError(f"{path}: no results here (expected a run folder with cells/, as written by "
                        "'musicbench run --out DIR', or a folder holding such run folders)")
    return found


def load_folders(paths: list[str | Path]) -> pd.DataFrame:
    """Cells of one or more run folders (a folder may also hold several run folders): the
    latest attempt of each, with stale failures (``ResultStore.current``) as status
    ``superseded``, which the tables leave out and count."""
    records = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise DataError(f"results folder {path} does not exist")
        for folder in _run_folders(path):
            current, stale = ResultStore(folder).current()
            for rec in current + stale:
                row = rec.row()
                row["predictions"] = str((folder / rec.predictions).resolve()) if rec.predictions else None
                row["source"] = str(folder)
                records.append(row)
    if not records:
        raise DataError(f"no finished or failed cells in {', '.join(map(str, paths))}")
    return _frame(records)


def _confusion_details(path: Path) -> tuple[list[str], dict[str, Any]]:
    cm = pd.read_csv(path, index_col=0)
    m = cm.to_numpy()
    support = m.sum(axis=1)
    recall = np.divide(np.diag(m), support, out=np.full(len(m), np.nan), where=support > 0)
    classes = [str(c) for c in cm.columns]
    return classes, {"confusion_matrix": m.tolist(),
                     "per_class_recall": {c: (None if np.isnan(r) else float(r))
                                          for c, r in zip(classes, recall, strict=True)}}


def load_experiment(name: str, tracking_uri: str | None = None,
                    artifact_dir: str | Path | None = None) -> pd.DataFrame:
    """Cells logged to the MLflow experiment ``name`` (one run per cell, artifacts fetched).

    Predictions and confusion matrices are downloaded into ``artifact_dir`` (a new temp
    folder by default); the latest run wins where a cell was logged more than once, and
    stale failures come back as status ``superseded`` (see ``ResultStore.current``).
    """
    from mlflow import MlflowClient

    from musicbench.results.tracking import default_tracking_uri

    # one progress bar per downloaded artifact would bury the report's own output
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(f"no MLflow experiment {name!r} at {uri}; experiments there: "
                          f"{', '.join(names) or '(none)'} (set --tracking-uri or MLFLOW_TRACKING_URI)")
    dest = Path(artifact_dir or tempfile.mkdtemp(prefix="musicbench-report-"))
    runs = client.search_runs([exp.experiment_id], max_results=50_000,
                              order_by=["attributes.start_time DESC"])
    latest: dict[str, tuple[CellRecord, Any]] = {}
    for run in runs:
        rec = CellRecord.from_mlflow(run.data.params, run.data.tags, run.data.metrics, run.info.run_id,
                                     finished=run.info.status == "FINISHED")
        if rec is not None and rec.cell_key not in latest:
            latest[rec.cell_key] = rec, run
    current, stale = supersede([rec for rec, _ in latest.values()])
    records: dict[str, dict[str, Any]] = {}
    for rec in current + stale:
        run = latest[rec.cell_key][1]
        row = {**rec.row(), "source": f"mlflow:{name}"}
        for art in client.list_artifacts(run.info.run_id):
            local = Path(client.download_artifacts(run.info.run_id, art.path, str(dest / rec.cell_key)))
            if art.path.endswith(".confusion.csv"):
                row["classes"], row["details"] = _confusion_details(local)
            elif art.path.endswith(".csv"):
                row["predictions"] = str(local)
        records[rec.cell_key] = row
    if not records:
        raise DataError(f"MLflow experiment {name!r} at {uri} holds no musicbench cells")
    return _frame(list(records.values()))


def read_predictions(path: str | None) -> pd.DataFrame | None:
    """The per-track predictions CSV of a cell, or None where it was not kept."""
    if not path or not Path(path).is_file():
        return None
    return pd.read_csv(path, dtype={"track_id": object, "label": object, "prediction": object},
                       keep_default_na=False)
