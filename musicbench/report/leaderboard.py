"""The leaderboard alone as Markdown: what ``musicbench run`` prints and writes after a run."""

from __future__ import annotations

import pandas as pd

from musicbench.report.build import build
from musicbench.report.markdown import block_markdown
from musicbench.report.registry import sections


def to_markdown(results: pd.DataFrame, alpha: float = 0.05) -> str:
    """The brief tables of the registry: leaderboards (with the paired test against the
    best), split mismatches and failed cells."""
    if results.empty:
        return "No results.\n"
    report = build(results, "Leaderboard", alpha, brief=True)
    out = ["# Leaderboard", ""]
    for section in sections(report, figures=False):
        out += [f"{p}\n" for p in section.intro]
        for block in section.blocks:
            out += block_markdown(block, level=2)
    return "\n".join(out)
