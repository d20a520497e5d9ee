"""The leaderboard alone as Markdown: what ``musicbench run`` prints and writes after a run."""

from __future__ import annotations

import pandas as pd

from musicbench.report import tables
from musicbench.report.build import Report
from musicbench.report.display import leaderboard_section, mismatch_section
from musicbench.report.markdown import block_markdown


def to_markdown(results: pd.DataFrame, alpha: float = 0.05) -> str:
    """Leaderboard tables (with the paired test against the best) and any split mismatches."""
    if results.empty:
        return "No results.\n"
    report = Report(title="Leaderboard", sources=[], alpha=alpha, reference_system=None,
                    leaderboard=tables.leaderboard(results, alpha),
                    split_mismatches=tables.split_mismatches(results), failed=tables.unresolved(results))
    out = ["# Leaderboard", ""]
    for section in (leaderboard_section(report), mismatch_section(report)):
        if section is None:
            continue
        out += [f"{p}\n" for p in section.intro]
        for block in section.blocks:
            out += block_markdown(block, level=2)
    return "\n".join(out)
