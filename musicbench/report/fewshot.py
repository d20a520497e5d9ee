"""The few-shot curve: a system's primary score against the training clips per class.

Cells run under ``PROTOCOL:shots=K`` (``musicbench.protocol.fewshot``) for several K are
one curve per task, base protocol and variant: for each K, the mean and 95% t interval
over its cells (base folds x draws x seeds). Where the same variant also ran under the
base protocol itself, its score with the whole training part closes the curve (``shots``
empty, shown as "all"). Each point keeps its own split hash: the draws differ with K, the
test parts do not.
"""

from __future__ import annotations

import pandas as pd

from musicbench.protocol.fewshot import split_suffix
from musicbench.protocol.metrics import get_metric, primary_metric
from musicbench.report.display import Block, Figure, Report, Section, _slug
from musicbench.report.figures import few_shot_png
from musicbench.report.stats import mean_ci
from musicbench.report.tables import VARIANT, iter_tables, iter_variants, table_kind, variant_label

CURVE = ["task", "version", "base_protocol", "kind"]
COLUMNS = [*CURVE, "split_hash", *VARIANT, "shots", "metric", "mean", "std", "ci_low", "ci_high",
           "cells", "folds", "seeds"]


def few_shot_curve(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (curve, variant, K), K ascending, the whole training part last."""
    rows = []
    for tkey, cells in iter_tables(results):
        base, shots, _ = split_suffix(tkey["protocol"])
        kind = table_kind(cells)
        metric = get_metric(primary_metric(kind))
        for vkey, g in iter_variants(cells):
            mean, lo, hi = mean_ci(g[metric.name].to_numpy(dtype=float), bounds=metric.bounds)
            std = float(g[metric.name].astype(float).std(ddof=1)) if len(g) > 1 else 0.0
            rows.append({"task": tkey["task"], "version": tkey["version"], "base_protocol": base,
                         "kind": kind, "split_hash": tkey["split_hash"], **vkey, "shots": shots,
                         "metric": metric.name, "mean": mean, "std": std, "ci_low": lo, "ci_high": hi,
                         "cells": len(g), "folds": g["fold"].nunique(), "seeds": g["seed"].nunique()})
    df = pd.DataFrame(rows, columns=COLUMNS)
    few = df[df["shots"].notna()]
    if few.empty:
        return pd.DataFrame(columns=COLUMNS)
    curves = few[CURVE + VARIANT].drop_duplicates()
    df = df.merge(curves, on=CURVE + VARIANT)  # the full-part points of variants with a curve only
    df["shots"] = df["shots"].astype("Int64")
    return df.sort_values([*CURVE, *VARIANT, "shots"], na_position="last").reset_index(drop=True)


def _point(r) -> str:
    return "—" if pd.isna(r["mean"]) else f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def few_shot_section(report: Report, figures: bool = False) -> Section | None:
    df = report["few_shot"]
    if df.empty:
        return None
    blocks = []
    for key, g in df.groupby(CURVE, sort=True, dropna=False):
        key = dict(zip(CURVE, key, strict=True))
        g = g.assign(variant=[variant_label(*v) for v in zip(g.system, g.augment, g.deform, g.tuned_kind,
                                                             strict=True)])
        shots = [int(s) for s in sorted(g["shots"].dropna().unique())]
        shots += [None] if g["shots"].isna().any() else []
        headers = ["system", *(f"k={s}" if s is not None else "all" for s in shots), "cells per k"]
        rows = []
        for label, v in g.groupby("variant", sort=False):
            by = {None if pd.isna(s) else int(s): r for s, r in zip(v["shots"], v.to_dict("records"),
                                                                     strict=True)}
            rows.append([label, *(_point(by[s]) if s in by else "—" for s in shots),
                         "/".join(str(by[s]["cells"]) if s in by else "0" for s in shots)])
        title = f"{key['task']}:{key['version']} — {key['base_protocol']}, shots per class"
        name = _slug("few-shot", key["task"], key["base_protocol"])
        figs = [Figure(f"{g['metric'].iloc[0]} against training clips per class, 95% intervals",
                       few_shot_png(g, title), name)] if figures else []
        blocks.append(Block(title, headers, rows, [f"Mean [95% t interval] of {g['metric'].iloc[0]} over "
                                                   "cells (base folds × draws × seeds)."], figures=figs))
    intro = ("Each system trained on k clips per class drawn from each fold's training part (several "
             "seeded draws per fold), tested on the fold's whole test part.")
    return Section("Few-shot", [intro], blocks)
