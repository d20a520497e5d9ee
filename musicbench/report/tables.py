"""The report's tables, computed from a results table (see ``musicbench.report.load``).

Each is registered once in ``musicbench.report.registry``, which the report, its exports
and its display sections derive from.

Every table is keyed by task x version x protocol x split hash: rows with different split
hashes were scored on different track sets, so they are never compared with each other;
``split_mismatches`` lists where that happened. Within a table a *variant* is one system
under one augmentation, deformation and tuning (none, one study shared by the folds, or
nested: one study per fold); its cells are its folds x seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from musicbench.protocol.metrics import RETRIEVAL, get_metric, metrics_for, primary_metric
from musicbench.report.paired import PAIR, paired_test
from musicbench.report.stats import adjust_p_values, mean_ci, pareto_front

TABLE = ["task", "version", "protocol", "split_hash"]
VARIANT = ["system", "augment", "deform", "tuned", "tuned_kind"]


TUNED_MARK = {"shared": "(tuned)", "per-fold": "(tuned per fold)"}


def variant_label(system: str, augment: str = "none", deform: str = "none", tuned_kind: str = "none") -> str:
    """A short variant name: system, +augmentation, @deformation, (tuned / tuned per fold)."""
    return " ".join(x for x in (system, "" if augment == "none" else f"+{augment}",
                                "" if deform == "none" else f"@{deform}", TUNED_MARK.get(tuned_kind, ""))
                    if x)


def ok_cells(results: pd.DataFrame) -> pd.DataFrame:
    """Finished cells with a resolved split, one per cell key (the latest wins)."""
    ok = results[(results.status == "ok") & (results.split_hash != "")]
    return ok.sort_values("finished_at", na_position="first").drop_duplicates("cell_key", keep="last")


def failed_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Failed cells that still count: stale failures (status ``superseded``) are left out."""
    return results[results.status == "failed"]


def table_kind(cells: pd.DataFrame) -> str:
    """The task kind of a table's cells (every record says which)."""
    kinds = cells["kind"].dropna().unique()
    if len(kinds) != 1:
        raise ValueError(f"cells of one table hold task kinds {sorted(kinds)}")
    return str(kinds[0])


def iter_tables(results: pd.DataFrame):
    """Per table key, its cells, one kind at a time: a cluster family's records on a split
    are a table of their own beside the classifiers' on the same split."""
    ok = ok_cells(results)
    for key, cells in ok.groupby(TABLE, sort=True, dropna=False):
        for _, same_kind in cells.groupby("kind", sort=True, dropna=False):
            yield dict(zip(TABLE, key, strict=True)), same_kind


def iter_variants(cells: pd.DataFrame):
    for key, g in cells.groupby(VARIANT, sort=True, dropna=False):
        yield dict(zip(VARIANT, key, strict=True)), g.drop_duplicates(PAIR, keep="last")


def _tuned_label(g: pd.DataFrame) -> str:
    if not g["tuned"].any():
        return "no"
    kind = "nested, per fold" if (g["tuned_kind"] == "per-fold").any() else "shared by the folds"
    study = g["tuned_study"].dropna()
    trials = pd.to_numeric(g["tuned_trials"], errors="coerce").dropna()
    extra = ", ".join(x for x in (kind, study.iloc[0] if len(study) else "",
                                  f"{int(trials.iloc[0])} trials" if len(trials) else "") if x)
    return f"yes ({extra})"


def leaderboard(results: pd.DataFrame, alpha: float = 0.05, correction: str = "holm") -> pd.DataFrame:
    """One row per variant: mean, std, 95% CI of each metric, cells, and a paired test vs the best.

    The tests of one table's variants against its best are counted together: ``p_value``
    is each test's own, ``p_adjusted`` the same after ``correction`` (``CORRECTIONS``)
    across the table. ``vs_best`` is ``best`` for the top row, ``tied`` where the adjusted
    p-value does not reject equality at ``alpha``, ``worse`` where it does, and ``n/a``
    where per-track predictions are missing or no cells share a fold and seed.
    """
    failed = failed_rows(results).groupby(TABLE + VARIANT, dropna=False).size()
    rows = []
    for tkey, cells in iter_tables(results):
        kind = table_kind(cells)
        primary = get_metric(primary_metric(kind))
        variants = list(iter_variants(cells))
        metrics = [m for m in metrics_for(kind, leaderboard_only=True)  # narrowed ones where they apply
                   if get_metric(m).applies is None or cells[m].notna().any()]
        table_rows = []
        for vkey, g in variants:
            row = {**tkey, **vkey, "kind": kind, "metric": primary.name}
            for m in metrics:
                bounds = get_metric(m).bounds or (-np.inf, np.inf)
                mean, lo, hi = mean_ci(g[m].to_numpy(dtype=float), bounds=bounds)
                std = float(g[m].astype(float).std(ddof=1)) if g[m].notna().sum() > 1 else 0.0
                row.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_ci_low": lo, f"{m}_ci_high": hi})
            row.update(
                tuned_label=_tuned_label(g), cells=len(g),
                failed=int(failed.get(tuple(tkey.values()) + tuple(vkey.values()), 0)),
                folds=g["fold"].nunique(), seeds=g["seed"].nunique(),
                tracks_used=int(g["n_tracks_used"].max()) if g["n_tracks_used"].notna().any() else None,
                tracks_index=int(g["n_tracks_index"].max()) if g["n_tracks_index"].notna().any() else None,
                leakage=float(g["group_leakage"].astype(float).mean()),
                fit_seconds=float(g["fit_seconds"].astype(float).mean()),
            )
            table_rows.append((row, g))
        sign = -1.0 if primary.higher_is_better else 1.0  # best first, unscored last
        table_rows.sort(key=lambda rg: np.nan_to_num(sign * rg[0][f"{primary.name}_mean"], nan=np.inf))
        best_row, best_cells = table_rows[0]
        for rank, (row, g) in enumerate(table_rows, 1):
            row.update(rank=rank, p_value=None, test=None, discordant=None, correction=correction)
            if row is best_row:
                continue
            t = paired_test(best_cells, g, kind)
            if t is not None and not np.isnan(t.p_value):
                row.update(p_value=t.p_value, test=t.method,
                           discordant=f"{t.a_better}/{t.b_better}" if kind != "multilabel" else None)
        raw = np.array([np.nan if r["p_value"] is None else r["p_value"] for r, _ in table_rows])
        adjusted = adjust_p_values(raw, correction)
        for (row, _), p in zip(table_rows, adjusted, strict=True):
            row["p_adjusted"] = None if np.isnan(p) else float(p)
            row["comparisons"] = int((~np.isnan(raw)).sum())
            row["vs_best"] = ("best" if row is best_row else "n/a" if np.isnan(p)
                              else "tied" if p >= alpha else "worse")
            rows.append(row)
    return pd.DataFrame(rows)


def split_mismatches(results: pd.DataFrame) -> pd.DataFrame:
    """Task x version x protocol combinations scored on more than one split (kept apart)."""
    ok = ok_cells(results)
    rows = []
    for (task, version, protocol), g in ok.groupby(["task", "version", "protocol"], dropna=False):
        if g["split_hash"].nunique() < 2:
            continue
        for sh, h in g.groupby("split_hash"):
            rows.append({"task": task, "version": version, "protocol": protocol, "split_hash": sh,
                         "tracks_used": int(h["n_tracks_used"].max()),
                         "tracks_index": int(h["n_tracks_index"].max()),
                         "systems": ", ".join(sorted(h["system"].unique())), "cells": len(h),
                         "sources": ", ".join(sorted(h["source"].dropna().unique()))})
    return pd.DataFrame(rows, columns=["task", "version", "protocol", "split_hash", "tracks_used",
                                       "tracks_index", "systems", "cells", "sources"])


def failed_cells(results: pd.DataFrame) -> pd.DataFrame:
    """Failed cells, with their error, so a report never hides what did not run."""
    bad = failed_rows(results)
    return bad[TABLE + VARIANT + ["fold", "seed", "error"]].reset_index(drop=True)


def _vocabulary_row(f: pd.DataFrame) -> dict:
    """How many tags a multilabel fold scored and how many it left out, and why: outside
    the vocabulary chosen on its training part, or unscorable in its test part."""
    vocab = next((d["vocabulary"] for d in f["details"] if d and d.get("vocabulary")), None)
    classes = next((c for c in f["classes"] if isinstance(c, list) and c), [])
    unscorable = pd.to_numeric(f["n_tags_dropped"], errors="coerce").max()
    dropped = (vocab or {}).get("dropped", {})
    why = [f"{len(tags)} {reason}" for reason, tags in dropped.items()]
    if pd.notna(unscorable) and unscorable:
        why.append(f"{int(unscorable)} all-positive or all-negative in the test part")
    return {"tags": len(classes), "tags_dropped": sum(len(t) for t in dropped.values()),
            "tags_unscorable": None if pd.isna(unscorable) else int(unscorable),
            "dropped_why": "; ".join(why)}


def stale_records(results: pd.DataFrame) -> pd.DataFrame:
    """Failures made stale by later work, counted per task, protocol and system: left out
    of every other table, never hidden (``musicbench results ls --status superseded``)."""
    stale = results[results.status == "superseded"]
    keys = ["task", "version", "protocol", "system"]
    return stale.groupby(keys, dropna=False).size().rename("records").reset_index()


def per_fold(results: pd.DataFrame) -> pd.DataFrame:
    """The primary metric of each variant per fold (mean over seeds): where a protocol's
    folds are groups (one tonic, one performer), how scores vary from group to group.
    Multilabel folds also say how many tags they scored and which they left out, and why."""
    rows = []
    for tkey, cells in iter_tables(results):
        kind = table_kind(cells)
        metric = primary_metric(kind)
        for vkey, g in iter_variants(cells):
            for fold, f in g.groupby("fold", sort=True):
                rows.append({**tkey, **vkey, "kind": kind, "fold": int(fold), "metric": metric,
                             "score": float(f[metric].astype(float).mean()), "n_test": int(f["n_test"].max()),
                             "seeds": f["seed"].nunique(),
                             **(_vocabulary_row(f) if kind == "multilabel" else {})})
    return pd.DataFrame(rows)


def per_class(results: pd.DataFrame) -> pd.DataFrame:
    """Per-class recall (multiclass) per variant, mean and std over cells."""
    rows = []
    for tkey, cells in iter_tables(results):
        if table_kind(cells) != "multiclass":
            continue
        for vkey, g in iter_variants(cells):
            recalls = pd.DataFrame([(d or {}).get("per_class_recall", {}) for d in g["details"]])
            for cls in recalls.columns:
                v = recalls[cls].astype(float)
                rows.append({**tkey, **vkey, "class": cls, "recall_mean": v.mean(),
                             "recall_std": v.std(ddof=1) if v.notna().sum() > 1 else 0.0,
                             "cells": int(v.notna().sum())})
    return pd.DataFrame(rows)


def per_tag(results: pd.DataFrame) -> pd.DataFrame:
    """Per-tag ROC-AUC and PR-AUC (multilabel) per variant, mean over cells."""
    rows = []
    for tkey, cells in iter_tables(results):
        if table_kind(cells) != "multilabel":
            continue
        for vkey, g in iter_variants(cells):
            scores = pd.DataFrame([
                {f"{tag}\x00{k}": v for tag, d in (det or {}).get("per_tag", {}).items()
                 for k, v in d.items()}
                for det in g["details"]
            ])
            for col in sorted(c for c in scores.columns if c.endswith("\x00roc_auc")):
                tag = col.split("\x00")[0]
                rows.append({**tkey, **vkey, "tag": tag,
                             "roc_auc_mean": scores[col].astype(float).mean(),
                             "pr_auc_mean": scores.get(f"{tag}\x00pr_auc", pd.Series(dtype=float))
                             .astype(float).mean(),
                             "cells": int(scores[col].notna().sum())})
    return pd.DataFrame(rows)


def retrieval(results: pd.DataFrame) -> pd.DataFrame:
    """The retrieval metrics (``RETRIEVAL``) of multilabel tables per variant: mean and 95%
    t interval over cells, as the leaderboard computes them for every metric."""
    rows = []
    for tkey, cells in iter_tables(results):
        if table_kind(cells) != "multilabel":
            continue
        for vkey, g in iter_variants(cells):
            row = {**tkey, **vkey, "cells": len(g)}
            for m in RETRIEVAL:
                mean, lo, hi = mean_ci(g[m].to_numpy(dtype=float), bounds=get_metric(m).bounds)
                row.update({f"{m}_mean": mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi})
            rows.append(row)
    return pd.DataFrame(rows)


def confusions(results: pd.DataFrame) -> list[dict]:
    """Confusion matrices summed over the cells of each un-augmented, un-deformed variant."""
    out = []
    for tkey, cells in iter_tables(results):
        if table_kind(cells) != "multiclass":
            continue
        for vkey, g in iter_variants(cells):
            if vkey["augment"] != "none" or vkey["deform"] != "none":
                continue
            mats = [np.asarray(d["confusion_matrix"]) for d in g["details"]
                    if d and d.get("confusion_matrix") is not None]
            classes = next((c for c in g["classes"] if c), None)
            if mats and classes:
                out.append({**tkey, **vkey, "classes": list(classes), "matrix": sum(mats).tolist(),
                            "cells": len(mats)})
    return out


def _delta_row(tkey: dict, axis: str, ref: pd.DataFrame, var: pd.DataFrame, metric: str,
               kind: str) -> dict:
    m = var[PAIR + [metric]].merge(ref[PAIR + [metric]], on=PAIR, suffixes=("", "_ref"))
    d = (m[metric] - m[f"{metric}_ref"]).to_numpy(dtype=float)
    mean, lo, hi = mean_ci(d)
    t = paired_test(var, ref, kind)
    return {**tkey, "axis": axis, "metric": metric, "reference_value": float(m[f"{metric}_ref"].mean()),
            "value": float(m[metric].mean()), "delta": mean, "ci_low": lo, "ci_high": hi, "pairs": len(d),
            "p_value": None if t is None else t.p_value}


def ablations(results: pd.DataFrame, reference_system: str | None = None,
              alpha: float = 0.05, correction: str = "holm") -> pd.DataFrame:
    """Deltas of each variant against its reference, paired on fold and seed.

    A deformation is compared with the same system on clean test data; an augmentation
    with the same system trained without it and tested under the same deformation (so
    ``pitch @ noise:10`` asks whether pitch-shifting the training data helps on noisy test
    data). With ``reference_system``, every other system (un-augmented, un-deformed) is
    compared with that system. The interval is a t interval over the
    per-cell differences; the p-value is the paired per-track test, adjusted by
    ``correction`` across the rows of one table before ``significant`` is decided.
    """
    rows = []
    for tkey, cells in iter_tables(results):
        kind = table_kind(cells)
        metric = primary_metric(kind)
        variants = {tuple(v.values()): g for v, g in iter_variants(cells)}
        for (system, augment, deform, tuned, kind), g in variants.items():
            if augment == "none" and deform == "none":
                continue
            base = deform if augment != "none" else "none"
            ref = variants.get((system, "none", base, tuned, kind))
            if ref is None:
                continue
            axis = "augment" if augment != "none" else "deform"
            at = "" if base == "none" else f" @ {base}"
            rows.append({**_delta_row(tkey, axis, ref, g, metric, kind), "system": system,
                         "tuned": tuned, "variant": (augment if augment != "none" else deform) + at,
                         "reference": "none" + at})
        if reference_system is None:
            continue
        refs = [g for (s, a, d, _, _), g in sorted(variants.items(), key=lambda kv: kv[0][3])
                if s == reference_system and a == "none" and d == "none"]
        if not refs:
            continue
        for (system, augment, deform, tuned, _), g in variants.items():
            if system == reference_system or augment != "none" or deform != "none":
                continue
            rows.append({**_delta_row(tkey, "system", refs[0], g, metric, kind), "system": system,
                         "tuned": tuned, "variant": system, "reference": reference_system})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["p_adjusted"] = df.groupby(TABLE, dropna=False)["p_value"].transform(
        lambda p: adjust_p_values(p.to_numpy(dtype=float), correction))
    df["correction"] = correction
    df["significant"] = [None if np.isnan(p) else bool(p < alpha) for p in df["p_adjusted"]]
    return df


def throughput(results: pd.DataFrame) -> pd.DataFrame:
    """Training and inference speed per system (clean test data), with the Pareto front.

    ``infer_clips_per_s`` is end-to-end (decoding, front ends or encoders, and the head,
    from each record's ``infer_seconds_per_clip``); ``head_clips_per_s`` is the head
    alone, from scoring time with the features cached. ``on_front`` marks systems that no
    other system in the table beats on both the primary metric and end-to-end clips per
    second. In a table with records that lack the end-to-end cost (written before it was
    measured) ``infer_clips_per_s`` is the head-only speed, and ``speed_basis`` says so.
    """
    rows = []
    for tkey, cells in iter_tables(results):
        metric = primary_metric(table_kind(cells))
        clean = cells[cells.deform == "none"]
        table = []
        for (system, augment, tuned, device), g in clean.groupby(
                ["system", "augment", "tuned", "device"], sort=True, dropna=False):
            fit, pred = g["fit_seconds"].astype(float), g["predict_seconds"].astype(float)
            e2e = _column(g, "infer_seconds_per_clip")
            table.append({**tkey, "system": system, "augment": augment, "tuned": tuned, "device": device,
                          "metric": metric, "score": float(g[metric].astype(float).mean()),
                          "fit_seconds": fit.mean(), "predict_seconds": pred.mean(),
                          "train_clips_per_s": g["n_train"].astype(float).sum() / fit.sum()
                          if fit.sum() > 0 else np.nan,
                          "infer_clips_per_s": 1 / e2e.mean() if e2e.notna().all() and e2e.mean() > 0
                          else np.nan,
                          "head_clips_per_s": g["n_test"].astype(float).sum() / pred.sum()
                          if pred.sum() > 0 else np.nan,
                          "features_seconds_per_clip": _column(g, "features_seconds_per_clip").mean(),
                          "cells": len(g)})
        basis = "end-to-end" if all(not np.isnan(r["infer_clips_per_s"]) for r in table) else "head only"
        if basis == "head only":
            table = [{**r, "infer_clips_per_s": r["head_clips_per_s"]} for r in table]
        front = pareto_front(np.array([r["score"] for r in table]),
                             np.array([r["infer_clips_per_s"] for r in table]))
        rows += [{**r, "speed_basis": basis, "on_front": bool(f)} for r, f in zip(table, front, strict=True)]
    return pd.DataFrame(rows)


def _column(g: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, all NaN where the records predate it."""
    return g[name].astype(float) if name in g else pd.Series(np.nan, index=g.index)


def robustness(results: pd.DataFrame) -> pd.DataFrame:
    """The primary metric of each system per (train-time augmentation, test-time
    deformation), for systems run under more than one of either: one matrix each."""
    rows = []
    for tkey, cells in iter_tables(results):
        metric = primary_metric(table_kind(cells))
        for (system, tuned), g in cells.groupby(["system", "tuned"], sort=True, dropna=False):
            if g["augment"].nunique() * g["deform"].nunique() < 2:
                continue
            for (augment, deform), v in g.groupby(["augment", "deform"], sort=False):
                v = v.drop_duplicates(PAIR, keep="last")
                rows.append({**tkey, "system": system, "tuned": tuned, "augment": augment,
                             "deform": deform, "metric": metric,
                             "score": float(v[metric].astype(float).mean()), "cells": len(v)})
    return pd.DataFrame(rows)
