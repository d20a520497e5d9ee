"""The report laid out for reading: sections of titled tables (strings) and figures.

Markdown and HTML render the same layout, so the two formats always say the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from musicbench.protocol.metrics import RETRIEVAL, get_metric, metrics_for
from musicbench.report.stats import CORRECTIONS
from musicbench.report.tables import TABLE, variant_label

Report = Any  # musicbench.report.build.Report, which is built from this module's sections

MARKS = {"best": "★", "tied": "≈"}
PUBLISHED = "†"  # marks a published figure's row


@dataclass
class Figure:
    caption: str
    png: bytes
    name: str  # file stem when written beside a Markdown report


@dataclass
class Block:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    marked: list[bool] = field(default_factory=list)  # rows to highlight
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Section:
    title: str
    intro: list[str]
    blocks: list[Block]


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def _pm(mean, std) -> str:
    return "—" if _num(mean) == "—" else f"{mean:.4f} ± {std:.4f}"


def _ci(lo, hi) -> str:
    return "—" if _num(lo) == "—" else f"[{lo:.4f}, {hi:.4f}]"


def _p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _p_adj(p, adjusted, correction: str) -> str:
    """The adjusted p-value the decision rests on, with the raw one beside it."""
    if correction == "none" or adjusted is None or (isinstance(adjusted, float) and math.isnan(adjusted)):
        return _p(p)
    return f"{_p(adjusted).replace('p', 'p_adj', 1)}; raw {_p(p)}"


def _table_title(key: dict) -> str:
    clustering = " — clustering" if key.get("kind") == "clustering" else ""
    return f"{key['task']}:{key['version']} — {key['protocol']} (split {key['split_hash']}){clustering}"


def _slug(*parts: object) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in str(p)) for p in parts)


def _by_table(df: pd.DataFrame):
    """Blocks of one table key and, where the table says, one kind (a clustering's own)."""
    if df.empty:
        return
    keys = TABLE + (["kind"] if "kind" in df.columns else [])
    yield from ((dict(zip(keys, k, strict=True)), g) for k, g in df.groupby(keys, sort=True, dropna=False))


def _has_variants(g: pd.DataFrame) -> bool:
    return bool((g["augment"] != "none").any() or (g["deform"] != "none").any())


def _variant_cells(r, variants: bool) -> list[str]:
    return [r["system"], *([r["augment"], r["deform"]] if variants else [])]


def _with_variant(g: pd.DataFrame) -> pd.DataFrame:
    """Adds a short variant name (``tables.variant_label``)."""
    names = [variant_label(*v) for v in zip(g.system, g.augment, g.deform, g.tuned_kind, strict=True)]
    return g.assign(variant=names)


def leaderboard_section(report: Report, figures: bool = False) -> Section:
    intro = [
        f"Mean ± std over cells (folds × seeds), a 95% t interval and the number of cells. Each variant "
        f"is tested against the best one on the same test tracks (cells matched on fold and seed; "
        f"McNemar's exact test, or its exact sign-flip generalisation when averaged over seeds; a paired "
        f"bootstrap of macro ROC-AUC for multilabel tasks; Wilcoxon's signed-rank test of per-track "
        f"squared errors for regression tasks). The tests of one table are counted together: "
        f"{CORRECTIONS[report.correction]} across its variants. ★ marks the best, ≈ the variants not "
        f"significantly different from it at α={report.alpha} after that correction. Rows are compared "
        f"only within one split hash."
    ]
    blocks = []
    for key, g in _by_table(report["leaderboard"]):
        g = g.sort_values("rank")
        kind = g["kind"].iloc[0]
        metrics = [m for m in metrics_for(kind, leaderboard_only=True)  # a narrowed metric where it applies
                   if get_metric(m).applies is None or g.get(f"{m}_mean", pd.Series()).notna().any()]
        variants = _has_variants(g)
        headers = ["", "system", *(["augment", "deform"] if variants else []), "tuned",
                   f"{metrics[0]}", "95% CI", *metrics[1:], "cells", "failed", "vs best"]
        rows, marked = [], []
        for _, r in g.iterrows():
            vs = (r["vs_best"] if r["vs_best"] in ("best", "n/a")
                  else f"{r['vs_best']} ({_p_adj(r['p_value'], r['p_adjusted'], report.correction)})")
            rows.append([MARKS.get(r["vs_best"], ""), *_variant_cells(r, variants), r["tuned_label"],
                         _pm(r[f"{metrics[0]}_mean"], r[f"{metrics[0]}_std"]),
                         _ci(r[f"{metrics[0]}_ci_low"], r[f"{metrics[0]}_ci_high"]),
                         *(_pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics[1:]),
                         f"{r['cells']} ({r['folds']}×{r['seeds']})", str(r["failed"]), vs])
            marked.append(r["vs_best"] in MARKS)
        notes = _fault_notes(report, key)
        published = _published_rows(report, key, metrics, len(headers), 2 + 2 * variants, notes)
        rows, marked = rows + published, marked + [False] * len(published)
        used, index = g["tracks_used"].max(), g["tracks_index"].max()
        if pd.notna(used) and pd.notna(index) and used < index:
            notes.append(f"Partial data: {int(used)} of {int(index)} tracks of the index were present.")
        leak = g["leakage"].max()
        if pd.notna(leak) and leak > 0:
            notes.append(f"Group leakage: up to {leak:.0%} of test tracks share a group with training "
                         "tracks under this protocol; scores are optimistic.")
        n = int(g["comparisons"].max())
        if n > 1 and report.correction != "none":
            notes.append(f"{n} variants tested against the best; p-values adjusted by "
                         f"{CORRECTIONS[report.correction]}.")
        blocks.append(Block(_table_title(key), headers, rows, notes, marked))
    return Section("Leaderboard", intro, blocks)


def _in_table(df: pd.DataFrame, key: dict) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df[TABLE] == pd.Series(key)[TABLE]).all(axis=1)]


def _fault_notes(report: Report, key: dict) -> list[str]:
    return [f"⚠ Known fault of {key['protocol']} on {key['task']}: {w}"
            for w in _in_table(report["protocol_faults"], key)["warning"]]


def _published_rows(report: Report, key: dict, metrics: list[str], width: int, tuned_at: int,
                    notes: list[str]) -> list[list[str]]:
    """The table's comparable published figures as † rows (one per system, its metrics in
    their columns); the figures of other protocols are counted in ``notes``."""
    pub = _in_table(report["published"], key)
    if pub.empty:
        return []
    same = pub[pub["comparable"].astype(bool)]
    rows = []
    for system, figs in same.groupby("system", sort=False):
        value = dict(zip(figs["metric"], figs["value"], strict=True))
        cells = [_num(value.get(m)) for m in metrics]
        row = [PUBLISHED, f"{system} (published)"] + [""] * (tuned_at - 2) + ["—", cells[0], "—", *cells[1:]]
        rows.append(row + [""] * (width - len(row) - 1) + ["not tested"])
    if len(same):
        by_source: dict[str, dict[str, None]] = {}  # one paper often gives every figure of a table
        for system, src in zip(same["system"], same["source"], strict=True):
            by_source.setdefault(src, {})[system] = None
        sources = "; ".join(f"{', '.join(systems)}: {src}" for src, systems in by_source.items())
        notes.append(f"{PUBLISHED} Published figures under {key['protocol']} on this version of the task, "
                     "printed "
                     f"for comparison and left out of every significance test ({sources}).")
    other = pub[~pub["comparable"].astype(bool)]
    if len(other):
        notes.append(f"{len(other)} published figure(s) of {key['task']} under other protocols or versions "
                     f"({', '.join(sorted(set(other['figure_protocol'])))}) are not comparable with this "
                     "table and not shown.")
    return rows


def across_tasks_section(report: Report, figures: bool = False) -> Section | None:
    df = report["across_tasks"]
    if df.empty:
        return None
    tasks = [c.removeprefix("normalised:") for c in df.columns if c.startswith("normalised:")]
    intro = [f"Every clean variant over the {df['of_tasks'].iloc[0]} tasks (task × protocol × split) it ran "
             "on: mean rank per task (1 = best; ties share), and the primary metric normalised per task "
             "between chance (0: random guessing, 1/classes for accuracy, 0.5 for ROC-AUC) and the best "
             "variant of that task (1), as HEAR does. Variants covering fewer tasks are not comparable "
             "on these means: see the tasks column."]
    rows = [[r["variant"], f"{r['tasks']}/{r['of_tasks']}", _num(r["mean_rank"], 2),
             _num(r["mean_normalised"], 3), *(_num(r[f"normalised:{t}"], 3) for t in tasks)]
            for _, r in df.iterrows()]
    blocks = [Block("Across tasks", ["variant", "tasks", "mean rank", "mean normalised", *tasks], rows,
                    marked=[i == 0 for i in range(len(rows))])]
    cd = report["critical_difference"]
    if not cd.empty:
        r0 = cd.iloc[0]
        notes = [f"Friedman χ² = {r0['friedman_chi2']:.2f} over {r0['blocks']} blocks (tasks × folds of "
                 f"{r0['tasks']} tasks), {_p(r0['friedman_p'])}; Nemenyi critical difference at "
                 f"α={r0['alpha']}: {r0['critical_difference']:.2f} ranks. Variants joined by a bar are not "
                 "significantly different (Demšar 2006)."]
        if r0["left_out"]:
            notes.append(f"Left out (not run on all of these tasks): {r0['left_out']}.")
        figs = []
        if figures:
            from musicbench.report.figures import critical_difference_png

            figs.append(Figure("Critical-difference diagram: mean rank over tasks × folds",
                               critical_difference_png(list(cd["variant"]), cd["mean_rank"].to_numpy(),
                                                       float(r0["critical_difference"]),
                                                       f"{r0['test']}, {r0['blocks']} blocks"),
                               "critical-difference"))
        blocks.append(Block("Critical difference", ["variant", "mean rank over blocks"],
                            [[v, _num(x, 2)] for v, x in zip(cd["variant"], cd["mean_rank"], strict=True)],
                            notes, figures=figs))
    return Section("Across tasks", intro, blocks)


def mismatch_section(report: Report, figures: bool = False) -> Section | None:
    df = report["split_mismatches"]
    if df.empty:
        return None
    return Section("Split mismatches", [], [Block(
        "Split mismatches", ["task", "protocol", "split hash", "tracks", "systems", "cells", "source"],
        [[f"{r.task}:{r.version}", r.protocol, r.split_hash, f"{r.tracks_used}/{r.tracks_index}",
          r.systems, str(r.cells), r.sources] for r in df.itertuples()],
        ["The same protocol was resolved into different splits (other tracks present, another "
         "index); each split has its own leaderboard table and they are not compared."])])


def failed_section(report: Report, figures: bool = False) -> Section | None:
    df = report["failed"]
    if df.empty:
        return None
    return Section("Failed cells", [], [Block(
        "Failed cells", ["task", "protocol", "system", "fold", "seed", "error"],
        [[f"{r.task}:{r.version}", r.protocol, r.system, str(r.fold), str(r.seed), str(r.error)[:200]]
         for r in df.itertuples()])])


def stale_section(report: Report, figures: bool = False) -> Section | None:
    df = report["stale"]
    if df.empty:
        return None
    n = int(df["records"].sum())
    return Section("Stale records", [
        f"{n} earlier failed record(s) ignored: superseded by later runs (a protocol resolved, "
        "a cell rerun on other data, a seed no longer asked for). List them with "
        "`musicbench results ls DIR --status superseded`; drop them with `results rm`."], [Block(
        "Stale records", ["task", "protocol", "system", "records"],
        [[f"{r.task}:{r.version}", r.protocol, r.system, str(r.records)] for r in df.itertuples()])])


def per_fold_section(report: Report, figures: bool = False) -> Section | None:
    if report["per_fold"].empty:
        return None
    blocks = []
    for key, g in _by_table(report["per_fold"]):
        g = _with_variant(g)
        wide = g.pivot_table(index="fold", columns="variant", values="score", sort=False)
        tests = g.groupby("fold")["n_test"].max()
        rows = [[str(fold), str(tests[fold]), *(_num(v, 3) for v in vals)]
                for fold, vals in zip(wide.index, wide.to_numpy(), strict=True)]
        notes = []
        if "tags" in g and g["tags"].notna().any():
            for fold, f in g.groupby("fold"):
                r = f.iloc[0]
                notes.append(f"Fold {fold}: {int(r['tags'])} tags scored"
                             + (f"; left out: {r['dropped_why']}" if r["dropped_why"] else "") + ".")
        blocks.append(Block(f"{_table_title(key)} — {g['metric'].iloc[0]} per fold",
                            ["fold", "test clips", *wide.columns], rows, notes))
    return Section("Per fold", ["The primary metric of each variant on each fold (mean over seeds)."],
                   blocks)


def per_class_section(report: Report, figures: bool) -> Section | None:
    if report["per_class"].empty:
        return None
    from musicbench.report.figures import confusion_png

    blocks = []
    for key, g in _by_table(report["per_class"]):
        g = _with_variant(g)
        wide = g.pivot_table(index="class", columns="variant", values="recall_mean", sort=False)
        rows = [[cls, *(_num(v, 3) for v in vals)] for cls, vals in zip(wide.index, wide.to_numpy(),
                                                                         strict=True)]
        figs = []
        if figures:
            for c in report["confusions"]:
                if all(c[k] == key[k] for k in TABLE):
                    title = f"{c['system']}{' (tuned)' if c['tuned'] else ''} — {_table_title(key)}"
                    figs.append(Figure(f"Confusion matrix of {c['system']}, summed over {c['cells']} cells",
                                       confusion_png(c["classes"], c["matrix"], title),
                                       _slug("confusion", *key.values(), c["system"],
                                             *(["tuned"] if c["tuned"] else []))))
        blocks.append(Block(_table_title(key) + " — recall per class", ["class", *wide.columns], rows,
                            figures=figs))
    return Section("Per class", [], blocks)


def per_tag_section(report: Report, figures: bool = False) -> Section | None:
    if report["per_tag"].empty:
        return None
    blocks = []
    for key, g in _by_table(report["per_tag"]):
        g = _with_variant(g)
        wide = g.pivot_table(index="tag", columns="variant", values="roc_auc_mean", sort=False)
        rows = [[tag, *(_num(v, 3) for v in vals)] for tag, vals in zip(wide.index, wide.to_numpy(),
                                                                         strict=True)]
        blocks.append(Block(_table_title(key) + " — ROC-AUC per tag", ["tag", *wide.columns], rows))
    return Section("Per tag", [], blocks)


RETRIEVAL_HEADERS = {"pr_auc_macro": "tag→audio mAP", "map_audio_to_tag": "audio→tag mAP"}


def retrieval_section(report: Report, figures: bool = False) -> Section | None:
    df = report["retrieval"]
    if df.empty:
        return None
    intro = ["Multilabel tasks as retrieval: tag → audio mAP (per tag, the clips ranked by score: the "
             "macro PR-AUC), audio → tag mAP and recall@k (per clip, its tags ranked by score), each "
             "the mean over cells with a 95% t interval; unobserved (clip, tag) pairs left out."]
    blocks = []
    for key, g in _by_table(df):
        g = _with_variant(g).sort_values("pr_auc_macro_mean", ascending=False)
        headers = ["variant", *(RETRIEVAL_HEADERS.get(m, m.replace("recall_at_", "R@")) for m in RETRIEVAL),
                   "cells"]
        rows = [[r["variant"], *(f"{_num(r[f'{m}_mean'])} {_ci(r[f'{m}_ci_low'], r[f'{m}_ci_high'])}"
                                 for m in RETRIEVAL), str(r["cells"])] for _, r in g.iterrows()]
        blocks.append(Block(_table_title(key) + " — retrieval", headers, rows))
    return Section("Retrieval", intro, blocks)


def ablation_section(report: Report, figures: bool = False) -> Section | None:
    if report["ablations"].empty:
        return None
    intro = ["Each variant against its reference (augmentation/deformation: the same system with "
             "'none'; system: the reference system), paired on fold and seed: delta of the mean, "
             "a 95% t interval of the per-cell differences, and the paired per-track test, "
             f"adjusted by {CORRECTIONS[report.correction]} across the rows of a table."]
    blocks = []
    for key, g in _by_table(report["ablations"]):
        rows = [[r.axis, r.system + (" (tuned)" if r.tuned else ""), r.variant, r.reference,
                 _num(r.reference_value), _num(r.value), f"{r.delta:+.4f}", _ci(r.ci_low, r.ci_high),
                 str(r.pairs), _p_adj(r.p_value, r.p_adjusted, report.correction) or "n/a"]
                for r in g.itertuples()]
        blocks.append(Block(_table_title(key), ["axis", "system", "variant", "reference",
                                                f"reference {g['metric'].iloc[0]}", "variant value",
                                                "delta", "95% CI", "pairs", "paired test"], rows,
                            marked=g["significant"].eq(True).tolist()))
    return Section("Ablations", intro, blocks)


def _none_first(labels) -> list[str]:
    """Run order, with the clean (``none``) setting first."""
    return sorted(labels, key=lambda label: label != "none")


def robustness_section(report: Report, figures: bool = False) -> Section | None:
    if report["robustness"].empty:
        return None
    intro = ["Mean score over folds and seeds of each system trained with an augmentation (rows) "
             "and tested under a deformation (columns); the last column averages a row over the "
             "deformations. ★ marks the best row by that average."]
    blocks = []
    for key, g in _by_table(report["robustness"]):
        for (system, tuned), m in g.groupby(["system", "tuned"], sort=True):
            grid = m.pivot_table(index="augment", columns="deform", values="score", sort=False)
            grid = grid.loc[_none_first(grid.index), _none_first(grid.columns)]
            mean = grid.mean(axis=1)
            best = mean.idxmax()
            rows = [[("★ " if a == best else "") + a, *(_num(x, 3) for x in grid.loc[a]),
                     _num(mean[a], 3)] for a in grid.index]
            title = f"{_table_title(key)} — {system}{' (tuned)' if tuned else ''}, {m['metric'].iloc[0]}"
            blocks.append(Block(title, ["augment \\ deform", *grid.columns, "mean"], rows,
                                marked=[a == best for a in grid.index]))
    return Section("Augmentation and deformation", intro, blocks)


def throughput_section(report: Report, figures: bool) -> Section | None:
    blocks = []
    from musicbench.report.figures import tradeoff_png

    for key, g in _by_table(report["throughput"]):
        rows = [[r.system + ("" if r.augment == "none" else f" +{r.augment}")
                 + (" (tuned)" if r.tuned else ""), str(r.device), _num(r.score), _num(r.fit_seconds, 2),
                 _num(r.train_clips_per_s, 1), _num(r.infer_clips_per_s, 1), _num(r.head_clips_per_s, 1),
                 "yes" if r.on_front else ""]
                for r in g.itertuples()]
        e2e = g["speed_basis"].iloc[0] == "end-to-end"
        figs = []
        if figures:
            figs.append(Figure("Score against end-to-end inference throughput (hollow: head only); red: "
                               "the Pareto front" if e2e else "Score against inference throughput (head "
                               "only); red: the Pareto front",
                               tradeoff_png(g, _table_title(key)), _slug("tradeoff", *key.values())))
        notes = ["Inference clips/s is end-to-end: decoding, front end or encoder (the cost recorded when "
                 "each clip's features were computed, cache hit or not) and the head; 'head only' is "
                 "scoring with the features cached. Timings are wall-clock from the run; use "
                 "'musicbench bench' for controlled timings."]
        if not e2e:
            notes.append("Some records predate the end-to-end cost: the Pareto front ranks head-only speeds; "
                         "rerun them (a new results folder) to measure it.")
        blocks.append(Block(_table_title(key), ["system", "device", g["metric"].iloc[0], "fit s/cell",
                                                "train clips/s", "inference clips/s", "head-only clips/s",
                                                "Pareto front"], rows, notes,
                            marked=list(g["on_front"]), figures=figs))
    if not blocks:
        return None
    return Section("Throughput", [], blocks)


def bench_section(report: Report) -> Section | None:
    """The 'musicbench bench' JSON given to the report, as a table."""
    if not report.bench:
        return None
    from musicbench.throughput.results import summary_table

    headers, rows = summary_table(report.bench)
    hw = report.bench.get("hardware", {})
    return Section("Benchmarks", [], [Block(
        "Benchmarks (musicbench bench)", headers, rows,
        [f"Hardware: {hw.get('cpu_model', '?')}, {hw.get('cpu_cores', '?')} cores, "
         f"GPU {hw.get('gpu') or 'none'}; device {hw.get('device', '?')}."])])
