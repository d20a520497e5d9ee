"""A compiled report: every table of ``musicbench.report.tables`` for one set of results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from musicbench.report import tables


@dataclass
class Report:
    title: str
    sources: list[str]
    alpha: float
    reference_system: str | None
    leaderboard: pd.DataFrame
    split_mismatches: pd.DataFrame
    failed: pd.DataFrame
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)  # empty: the section is left out
    per_tag: pd.DataFrame = field(default_factory=pd.DataFrame)
    ablations: pd.DataFrame = field(default_factory=pd.DataFrame)
    robustness: pd.DataFrame = field(default_factory=pd.DataFrame)
    throughput: pd.DataFrame = field(default_factory=pd.DataFrame)
    confusions: list[dict] = field(default_factory=list)
    bench: dict[str, Any] | None = None  # a 'musicbench bench' JSON, shown as a table


def build(results: pd.DataFrame, title: str, alpha: float = 0.05, reference_system: str | None = None,
          bench: dict[str, Any] | None = None) -> Report:
    """Compile all report tables from a results table (``musicbench.report.load``)."""
    return Report(
        title=title, sources=sorted(results["source"].dropna().unique()), alpha=alpha,
        reference_system=reference_system,
        leaderboard=tables.leaderboard(results, alpha),
        split_mismatches=tables.split_mismatches(results),
        failed=tables.unresolved(results),
        per_class=tables.per_class(results),
        per_tag=tables.per_tag(results),
        ablations=tables.ablations(results, reference_system, alpha),
        robustness=tables.robustness(results),
        throughput=tables.throughput(results),
        confusions=tables.confusions(results),
        bench=bench,
    )
