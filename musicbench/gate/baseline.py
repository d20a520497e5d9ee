"""Metric baselines: per task x protocol x system variant, the expected score and a tolerance.

A baseline is JSON (``bench/baselines/*.json``) written from a results folder by
``musicbench check --results DIR --write-baseline FILE``. Each entry names its split hash:
if the split changed (other tracks, another index) the scores are not comparable and the
gate says so instead of comparing them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicbench.errors import DataError
from musicbench.protocol.metrics import get_metric, primary_metric
from musicbench.report.tables import VARIANT, failed_rows, iter_tables, table_kind

KEY = ["task", "version", "protocol", "system", "augment", "deform", "tuned"]
FAILING = ("REGRESSION", "MISSING", "SPLIT CHANGED", "INCOMPLETE", "FAILED CELLS")


def _means(results: pd.DataFrame, metric: str | None) -> list[dict[str, Any]]:
    rows = []
    for tkey, cells in iter_tables(results):
        m = metric or primary_metric(table_kind(cells))
        for vkey, g in cells.groupby(VARIANT, sort=True):
            rows.append({**tkey, **dict(zip(VARIANT, vkey, strict=True)),
                         "metric": m, "value": float(g[m].astype(float).mean()), "cells": len(g)})
    return rows


def make_baseline(results: pd.DataFrame, tolerance: float = 0.02, metric: str | None = None,
                  description: str = "") -> dict[str, Any]:
    """A baseline from the current results: each variant's mean of ``metric`` (default: primary)."""
    from musicbench.runtime import code_version

    entries = [{**r, "tuned": bool(r["tuned"]), "value": round(r["value"], 6), "tolerance": tolerance}
               for r in _means(results, metric)]
    return {"description": description, "code_version": code_version(), "entries": entries}


def load_baseline(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"baseline {path}: cannot read it ({exc}); write one with 'musicbench check "
                        "--results DIR --write-baseline FILE'") from None
    if not isinstance(data.get("entries"), list):
        raise DataError(f"baseline {path}: no 'entries' list")
    return data


@dataclass(frozen=True)
class MetricDiff:
    name: str
    metric: str
    baseline: float
    current: float | None
    tolerance: float
    status: str  # ok | improved | REGRESSION | MISSING | SPLIT CHANGED | INCOMPLETE | FAILED CELLS
    detail: str = ""

    @property
    def failing(self) -> bool:
        return self.status in FAILING


def _name(e: dict[str, Any]) -> str:
    extra = "".join(f" {k}={e[k]}" for k in ("augment", "deform") if e.get(k, "none") != "none")
    tuned = " (tuned)" if e.get("tuned") else ""
    return f"{e['task']}:{e['version']} {e['protocol']} {e['system']}{extra}{tuned}"


def check_metrics(results: pd.DataFrame, baseline: dict[str, Any]) -> list[MetricDiff]:
    """Each baseline entry against the results: worse than value by more than the tolerance
    (in the metric's declared direction) is a regression."""
    out = []
    failed = failed_rows(results)
    for e in baseline["entries"]:
        e = {"augment": "none", "deform": "none", "tuned": False, **e}
        current = {(r["split_hash"], r["metric"]): r for r in _means(results, e["metric"])
                   if all(r[k] == e[k] for k in KEY)}
        name, tol, value = _name(e), float(e["tolerance"]), float(e["value"])
        row = current.get((e["split_hash"], e["metric"]))
        bad = failed[(failed.task == e["task"]) & (failed.protocol == e["protocol"])
                     & (failed.system == e["system"])]
        if row is None:
            other = sorted(sh for sh, _ in current)
            if other:
                out.append(MetricDiff(name, e["metric"], value, None, tol, "SPLIT CHANGED",
                                      f"baseline split {e['split_hash']}, results have {', '.join(other)}: "
                                      "different track sets are not compared; regenerate the baseline "
                                      "if the data changed on purpose"))
            else:
                why = f"{len(bad)} failed cell(s): {bad['error'].iloc[0]}" if len(bad) else "not in results"
                ran = results[(results.task == e["task"]) & (results.system == e["system"])]
                if len(ran) and not len(bad):
                    why += f"; it ran under {', '.join(sorted(set(ran['protocol'])))}"
                out.append(MetricDiff(name, e["metric"], value, None, tol, "MISSING", why))
            continue
        cur = row["value"]
        sign = 1.0 if get_metric(e["metric"]).higher_is_better else -1.0
        if len(bad):
            status, detail = "FAILED CELLS", f"{len(bad)} failed: {bad['error'].iloc[0]}"
        elif row["cells"] < e.get("cells", 0):
            status, detail = "INCOMPLETE", f"{row['cells']} of {e['cells']} cells"
        elif sign * (cur - value) < -tol:
            status, detail = "REGRESSION", f"worse by {abs(value - cur):.4f} (> tolerance {tol:g})"
        elif sign * (cur - value) > tol:
            status, detail = "improved", "beats the baseline by more than its tolerance; consider updating it"
        else:
            status, detail = "ok", ""
        out.append(MetricDiff(name, e["metric"], value, cur, tol, status, detail))
    return out


def format_metric_diff(diffs: list[MetricDiff]) -> str:
    width = max([len(d.name) for d in diffs] + [5])
    lines = [f"{'entry':{width}s}  {'metric':10s}  {'baseline':>8s}  {'current':>8s}  {'delta':>8s}  status"]
    for d in sorted(diffs, key=lambda d: (not d.failing, d.name)):
        cur = "—" if d.current is None else f"{d.current:.4f}"
        delta = "—" if d.current is None else f"{d.current - d.baseline:+.4f}"
        lines.append(f"{d.name:{width}s}  {d.metric:10s}  {d.baseline:8.4f}  {cur:>8s}  {delta:>8s}  "
                     f"{d.status}{'  ' + d.detail if d.detail else ''}")
    return "\n".join(lines)
