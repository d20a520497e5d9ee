"""Write a compiled report in the asked formats: md, html, csv (one file per table), json."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.errors import ConfigError
from musicbench.report import htmlpage, markdown
from musicbench.report.build import Report
from musicbench.report.registry import TABLES, sections
from musicbench.report.stats import CORRECTIONS
from musicbench.runtime import atomic_write

FORMATS = ("md", "html", "csv", "json")


def parse_formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return formats


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _meta(report: Report) -> list[str]:
    return [f"compiled {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"from {', '.join(report.sources) or '(nothing)'}",
            f"significance level α = {report.alpha}, {CORRECTIONS[report.correction]} per table"
            + (f"; ablation reference system: {report.reference_system}" if report.reference_system else "")]


def to_json(report: Report) -> dict[str, Any]:
    tables = {name: (t.to_dict(orient="records") if isinstance(t, pd.DataFrame) else t)
              for name, t in ((n, report[n]) for n in TABLES)}
    return clean({"title": report.title, "sources": report.sources, "alpha": report.alpha,
                  "correction": report.correction,
                  "reference_system": report.reference_system, **tables, "bench": report.bench})


def write_report(report: Report, out: Path, formats: list[str]) -> list[Path]:
    """Writes the report into ``out``; returns the files written (figures included)."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures = "md" in formats or "html" in formats
    layout = sections(report, figures=figures)
    if "md" in formats:
        fig_dir = out / "figures"
        text = markdown.render(report.title, _meta(report), layout, fig_dir)
        atomic_write(out / "report.md", text)
        written += [out / "report.md", *sorted(fig_dir.glob("*.png"))]
    if "html" in formats:
        atomic_write(out / "report.html", htmlpage.render(report.title, _meta(report), layout))
        written.append(out / "report.html")
    if "csv" in formats:
        for name in (n for n, t in TABLES.items() if t.csv):
            df: pd.DataFrame = report[name]
            if not df.empty:
                atomic_write(out / f"{name}.csv", df.to_csv(index=False))
                written.append(out / f"{name}.csv")
    if "json" in formats:
        atomic_write(out / "report.json", json.dumps(to_json(report), indent=1, allow_nan=False) + "\n")
        written.append(out / "report.json")
    return written
