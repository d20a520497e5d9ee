"""Markdown rendering of the report layout; figures become PNG files beside the page."""

from __future__ import annotations

from pathlib import Path

from musicbench.report.display import Block, Section


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def block_markdown(block: Block, level: int = 3, figure_dir: Path | None = None) -> list[str]:
    """One titled table, its notes and, with ``figure_dir``, its figures written as PNG files."""
    out = [f"{'#' * level} {block.title}", ""]
    out += [f"> {note}\n" for note in block.notes]
    out.append("| " + " | ".join(_cell(h) for h in block.headers) + " |")
    out.append("|" + "|".join("---" for _ in block.headers) + "|")
    for row in block.rows:
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    out.append("")
    if figure_dir is not None:
        for fig in block.figures:
            path = figure_dir / f"{fig.name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(fig.png)
            out += [f"![{fig.caption}]({figure_dir.name}/{path.name})", ""]
    return out


def render(title: str, meta: list[str], sections: list[Section], figure_dir: Path | None = None) -> str:
    out = [f"# {title}", "", *(f"- {m}" for m in meta), ""]
    for s in sections:
        out += [f"## {s.title}", "", *(f"{p}\n" for p in s.intro)]
        for b in s.blocks:
            out += block_markdown(b, 3, figure_dir)
    return "\n".join(out).rstrip() + "\n"
