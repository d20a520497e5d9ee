"""Read results into one table: from run folders (the results store) or from MLflow.

Each row is a cell record (the columns of ``musicbench.runner.store.COLUMNS`` plus
``classes``, ``details`` and ``predictions``, an absolute path to the per-track CSV or
None). Both sources give the same table, so every report section works on either.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.errors import ConfigError, DataError
from musicbench.runner.store import COLUMNS, ResultStore

EXTRA = ["classes", "details", "predictions", "source"]


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(records)
    for col in COLUMNS + EXTRA:
        if col not in df:
            df[col] = None
    df["augment"] = df["augment"].fillna("none")
    df["deform"] = df["deform"].fillna("none")
    df["tuned"] = df["tuned"].fillna(False).astype(bool)
    df["split_hash"] = df["split_hash"].fillna("")
    return df[COLUMNS + EXTRA]


def _run_folders(path: Path) -> list[Path]:
    if (path / "cells").is_dir():
        return [path]
    found = sorted(p.parent for p in path.rglob("cells") if p.is_dir())
    if not found:
        raise DataError(f"{path}: no results here (expected a run folder with cells/, as written by "
                        "'musicbench run --out DIR', or a folder holding such run folders)")
    return found


def load_folders(paths: list[str | Path]) -> pd.DataFrame:
    """Cells of one or more run folders (a folder may also hold several run folders)."""
    records = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise DataError(f"results folder {path} does not exist")
        for folder in _run_folders(path):
            for rec in ResultStore(folder).records():
                pred = rec.get("predictions")
                rec["predictions"] = str((folder / pred).resolve()) if pred else None
                rec["source"] = str(folder)
                records.append(rec)
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
    folder by default); the latest run wins where a cell was logged more than once.
    """
    from mlflow import MlflowClient

    from musicbench.runner.tracking import CELL_TAG, default_tracking_uri

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
    records: dict[str, dict[str, Any]] = {}
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        key = tags.get(CELL_TAG)
        if key is None or key in records or "task" not in params:
            continue
        rec: dict[str, Any] = {
            "task": params["task"], "version": params.get("version"), "protocol": params["protocol"],
            "fold": int(params["fold"]), "system": params["system"], "seed": int(params["seed"]),
            "n_train": _num(params.get("n_train")), "n_test": _num(params.get("n_test")),
            "augment": params.get("augment", "none"), "deform": params.get("deform", "none"),
            "tuned": params.get("tuned") == "True", "tuned_study": params.get("tuned_study"),
            "split_hash": tags.get("split_hash", ""), "status": tags.get("status", "ok"),
            "device": tags.get("device"), "error": tags.get("error"), "cell_key": key,
            "mlflow_run_id": run.info.run_id, "source": f"mlflow:{name}", **metrics,
        }
        rec["status"] = "ok" if rec["status"] == "ok" and run.info.status == "FINISHED" else "failed"
        for art in client.list_artifacts(run.info.run_id):
            local = Path(client.download_artifacts(run.info.run_id, art.path, str(dest / key)))
            if art.path.endswith(".confusion.csv"):
                rec["classes"], rec["details"] = _confusion_details(local)
            elif art.path.endswith(".csv"):
                rec["predictions"] = str(local)
        records[key] = rec
    if not records:
        raise DataError(f"MLflow experiment {name!r} at {uri} holds no musicbench cells")
    return _frame(list(records.values()))


def _num(text: str | None) -> float | None:
    return None if text in (None, "None") else float(text)


def read_predictions(path: str | None) -> pd.DataFrame | None:
    """The per-track predictions CSV of a cell, or None where it was not kept."""
    if not path or not Path(path).is_file():
        return None
    return pd.read_csv(path, dtype={"track_id": object, "label": object, "prediction": object},
                       keep_default_na=False)
