"""A self-contained HTML page of the report: inline CSS, figures as base64 PNG, no scripts.

It opens offline from a single file (mail it, attach it to a CI run) and prints cleanly.
"""

from __future__ import annotations

import base64
from html import escape

from musicbench.report.display import PUBLISHED, Block, Section

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#1b1b1b;line-height:1.4}
h1{border-bottom:2px solid #333}h2{margin-top:2.5rem;border-bottom:1px solid #bbb}h3{margin-top:1.6rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}td{white-space:nowrap}.scroll{overflow-x:auto}
tr.marked td{background:#eaf6ea;font-weight:600}
tr.published td{background:#f3f0fa;font-style:italic}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.3rem .6rem;margin:.4rem 0}
figure{display:inline-block;margin:.5rem 1rem .5rem 0}figcaption{font-size:.8rem;color:#555}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
ul.meta{color:#444;font-size:.9rem}
"""


def _block(block: Block) -> str:
    out = [f"<h3>{escape(block.title)}</h3>"]
    out += [f'<p class="note">{escape(n)}</p>' for n in block.notes]
    head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
    out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>')
    marked = block.marked or [False] * len(block.rows)
    for row, mark in zip(block.rows, marked, strict=True):
        cls = ' class="marked"' if mark else ' class="published"' if row and row[0] == PUBLISHED else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table></div>")
    for fig in block.figures:
        data = base64.b64encode(fig.png).decode("ascii")
        out.append(f'<figure><img alt="{escape(fig.caption)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{escape(fig.caption)}</figcaption></figure>")
    return "\n".join(out)


def render(title: str, meta: list[str], sections: list[Section]) -> str:
    body = [f"<h1>{escape(title)}</h1>", '<ul class="meta">'
            + "".join(f"<li>{escape(m)}</li>" for m in meta) + "</ul>"]
    for s in sections:
        body.append(f"<h2>{escape(s.title)}</h2>")
        body += [f"<p>{escape(p)}</p>" for p in s.intro]
        body += [_block(b) for b in s.blocks]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
