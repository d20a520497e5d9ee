"""Report figures as PNG bytes (matplotlib's object API: no global state, no display needed)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def confusion_png(classes: list[str], matrix: list[list[int]], title: str) -> bytes:
    """Row-normalised confusion matrix (recall on the diagonal), counts written in each cell."""
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = max(3.5, 0.45 * n + 1.5)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    return _png(fig)


def tradeoff_png(rows: pd.DataFrame, title: str) -> bytes:
    """Score against inference clips per second (log scale), the Pareto front drawn as a step line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    pts = rows.dropna(subset=["score", "infer_clips_per_s"])
    ax.scatter(pts["infer_clips_per_s"], pts["score"], c=np.where(pts["on_front"], "tab:red", "tab:blue"),
               s=40, zorder=3)
    for _, r in pts.iterrows():
        label = r["system"] + ("" if r["augment"] == "none" else f" +{r['augment']}")
        ax.annotate(label, (r["infer_clips_per_s"], r["score"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    front = pts[pts["on_front"]].sort_values("infer_clips_per_s")
    if len(front) > 1:
        ax.step(front["infer_clips_per_s"], front["score"], where="pre", color="tab:red",
                alpha=0.6, label="Pareto front")
        ax.legend(fontsize=8, loc="lower left")
    ax.set_xscale("log")
    ax.set_xlabel("inference throughput (clips/s, log scale)")
    ax.set_ylabel(rows["metric"].iloc[0] if len(rows) else "score")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)
