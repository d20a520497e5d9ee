"""A compiled report: every registered table (``musicbench.report.registry``) for one set
of results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from musicbench.report.registry import TABLES, Options


@dataclass
class Report:
    title: str
    sources: list[str]
    options: Options
    tables: dict[str, pd.DataFrame | list[dict[str, Any]]] = field(default_factory=dict)
    bench: dict[str, Any] | None = None  # a 'musicbench bench' JSON, shown as a table

    @property
    def alpha(self) -> float:
        return self.options.alpha

    @property
    def correction(self) -> str:
        return self.options.correction

    @property
    def reference_system(self) -> str | None:
        return self.options.reference_system

    def __getitem__(self, name: str) -> pd.DataFrame | list[dict[str, Any]]:
        """A table by its registered name; empty where it was not compiled."""
        return self.tables.get(name, [] if name in TABLES and not TABLES[name].csv else pd.DataFrame())


def build(results: pd.DataFrame, title: str, alpha: float = 0.05, reference_system: str | None = None,
          bench: dict[str, Any] | None = None, brief: bool = False, correction: str = "holm") -> Report:
    """Compile the registered tables from a results table (``musicbench.report.load``);
    ``brief`` compiles only the leaderboard's; ``correction`` counts the tests of one
    table together (``musicbench.report.stats.CORRECTIONS``)."""
    options = Options(alpha, reference_system, correction)
    return Report(
        title=title, sources=sorted(results["source"].dropna().unique()), options=options,
        tables={name: t.compute(results, options) for name, t in TABLES.items() if t.brief or not brief},
        bench=bench,
    )
