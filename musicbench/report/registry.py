"""The report tables, registered once: how each is computed from the results table, how
it reads in Markdown and HTML, and whether it goes to CSV.

The compiled ``Report``, its exports (md, html, csv, json), its display sections and the
leaderboard printed after a run all derive from ``TABLES``; adding a table is one entry
here, its compute function and (optionally) its section. Order is reading order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from musicbench.registry import Registry
from musicbench.report import across, display, fewshot, published, tables


@dataclass(frozen=True)
class Options:
    """What a table may depend on besides the results."""

    alpha: float = 0.05
    reference_system: str | None = None
    correction: str = "holm"  # across the variants of one table (``stats.CORRECTIONS``)


@dataclass(frozen=True)
class ReportTable:
    name: str
    compute: Callable[[pd.DataFrame, Options], pd.DataFrame | list[dict[str, Any]]]
    #: the section that shows it: fn(report, figures) -> Section | None; None where another
    #: table's section shows it (confusion matrices are figures of the per-class section)
    section: Callable[[Any, bool], display.Section | None] | None
    csv: bool = True
    brief: bool = False  # part of the leaderboard that 'musicbench run' prints
    doc: str = ""


TABLES: Registry[ReportTable] = Registry("report table", {t.name: t for t in (
    ReportTable("leaderboard", lambda r, o: tables.leaderboard(r, o.alpha, o.correction),
                display.leaderboard_section, brief=True,
                doc="mean and interval of each variant per task, protocol and split, tested"
                    " against the best"),
    ReportTable("published", lambda r, o: published.published(r), None, brief=True,
                doc="the literature's figures under the protocol of a leaderboard (reference rows)"),
    ReportTable("protocol_faults", lambda r, o: published.protocol_faults(r), None, brief=True,
                doc="known faults of the protocols a leaderboard uses"),
    ReportTable("across_tasks", lambda r, o: across.across_tasks(r), display.across_tasks_section,
                doc="mean ranks of the systems over tasks"),
    ReportTable("critical_difference", lambda r, o: across.critical_difference(r, o.alpha), None,
                doc="Friedman test and Nemenyi critical difference of the ranks over tasks"),
    ReportTable("split_mismatches", lambda r, o: tables.split_mismatches(r), display.mismatch_section,
                brief=True, doc="variants of one protocol that ran on different splits"),
    ReportTable("failed", lambda r, o: tables.failed_cells(r), display.failed_section, brief=True,
                doc="cells that failed, with their errors"),
    ReportTable("stale", lambda r, o: tables.stale_records(r), display.stale_section, brief=True,
                doc="failures made stale by later work, counted"),
    ReportTable("few_shot", lambda r, o: fewshot.few_shot_curve(r), fewshot.few_shot_section,
                doc="score against training clips per class, with intervals"),
    ReportTable("per_fold", lambda r, o: tables.per_fold(r), display.per_fold_section,
                doc="the primary metric of each variant on each fold"),
    ReportTable("per_class", lambda r, o: tables.per_class(r), display.per_class_section,
                doc="recall, precision and F1 per class"),
    ReportTable("per_tag", lambda r, o: tables.per_tag(r), display.per_tag_section,
                doc="ROC-AUC and PR-AUC per tag"),
    ReportTable("retrieval", lambda r, o: tables.retrieval(r), display.retrieval_section,
                doc="audio-to-tag and tag-to-audio retrieval scores"),
    ReportTable("confusions", lambda r, o: tables.confusions(r), None, csv=False,
                doc="confusion matrices, drawn in the per-class section"),
    ReportTable("ablations", lambda r, o: tables.ablations(r, o.reference_system, o.alpha, o.correction),
                display.ablation_section, doc="each variant against its reference system, paired"),
    ReportTable("robustness", lambda r, o: tables.robustness(r), display.robustness_section,
                doc="the primary metric per train-time augmentation and test-time deformation"),
    ReportTable("throughput", lambda r, o: tables.throughput(r), display.throughput_section,
                doc="end-to-end and head-only cost per clip, fit time"),
)}, doc="what a report compiles from records: a CSV table and the section that shows it")


def sections(report: Any, figures: bool = True) -> list[display.Section]:
    """The report's sections in reading order, one per compiled table that has one, then
    the benchmark table; ``figures=False`` skips rendering plots."""
    out = [t.section(report, figures) for name, t in TABLES.items() if t.section and name in report.tables]
    out.append(display.bench_section(report))
    return [s for s in out if s is not None]
