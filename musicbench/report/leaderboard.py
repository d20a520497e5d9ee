"""Leaderboard: mean +- std over folds and seeds per task x protocol x split hash x system.

Rows are compared only within one split hash: the same protocol over different track
sets (partial data, another index) gets its own table rather than being mixed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from musicbench.protocol.metrics import MULTICLASS_METRICS, MULTILABEL_METRICS

GROUP = ["task", "version", "protocol", "split_hash", "system", "augment", "deform"]


def _fmt(values: pd.Series) -> str:
    v = values.dropna().astype(float)
    if v.empty:
        return "—"
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per task x version x protocol x split hash x system."""
    rows = []
    for key, g in results.groupby(GROUP, dropna=False, sort=True):
        ok = g[g.status == "ok"]
        multiclass = ok["accuracy"].notna().any() or not ok["roc_auc_macro"].notna().any()
        metrics = MULTICLASS_METRICS if multiclass else MULTILABEL_METRICS
        row = dict(zip(GROUP, key, strict=True))
        row["primary"] = metrics[0]
        for m in metrics:
            vals = ok[m].dropna().astype(float)
            row[f"{m}_mean"] = vals.mean() if len(vals) else np.nan
            row[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else 0.0
            row[m] = _fmt(ok[m])
        row["cells"] = len(ok)
        row["failed"] = int((g.status != "ok").sum())
        row["folds"] = ok["fold"].nunique()
        row["seeds"] = ok["seed"].nunique()
        row["tracks"] = f"{int(ok.n_tracks_used.max())}/{int(ok.n_tracks_index.max())}" if len(ok) else "—"
        row["leakage"] = float(ok["group_leakage"].astype(float).mean()) if len(ok) else np.nan
        row["fit_s"] = float(ok["fit_seconds"].astype(float).mean()) if len(ok) else np.nan
        row["tuned"] = bool(g["tuned"].astype(bool).any())
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(results: pd.DataFrame) -> str:
    """The leaderboard as Markdown, one table per task x protocol x split hash."""
    if results.empty:
        return "No results.\n"
    summary = summarise(results)
    out = ["# Leaderboard", ""]
    for (task, version, protocol, sh), g in summary.groupby(
        ["task", "version", "protocol", "split_hash"], dropna=False, sort=True
    ):
        primary = g["primary"].iloc[0]
        g = g.sort_values(f"{primary}_mean", ascending=False, na_position="last")
        metrics = MULTICLASS_METRICS if primary == "accuracy" else MULTILABEL_METRICS
        leak = g["leakage"].max()
        out.append(f"## {task}:{version} — {protocol} (split {sh or 'unresolved'})")
        out.append("")
        if leak and leak > 0:
            out.append(f"> **Group leakage**: up to {leak:.0%} of test tracks share a group with "
                       "training tracks under this protocol; scores are optimistic.")
            out.append("")
        variants = g[["augment", "deform"]].ne("none").any().any()
        header = ["system", *(["augment", "deform"] if variants else []), *metrics, "cells", "failed", "tracks", "fit s", "tuned"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        for _, r in g.iterrows():
            cells = [r["system"], *([r["augment"], r["deform"]] if variants else []),
                     *(r[m] for m in metrics), str(r["cells"]), str(r["failed"]),
                     r["tracks"], "—" if np.isnan(r["fit_s"]) else f"{r['fit_s']:.2f}",
                     "yes" if r["tuned"] else "no"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
