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
    """Score against end-to-end inference clips per second (log scale), the Pareto front
    drawn as a step line; each system's head-only speed (features cached) is a hollow
    marker joined to it, so the cost of decoding and front end or encoder shows as the
    gap. Tables whose records lack the end-to-end cost plot head-only speeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    e2e = len(rows) and rows["speed_basis"].iloc[0] == "end-to-end"
    x = "infer_clips_per_s"
    pts = rows.dropna(subset=["score", x])
    if e2e:
        for _, r in pts.iterrows():
            ax.plot([r[x], r["head_clips_per_s"]], [r["score"], r["score"]], color="0.6", lw=0.8, zorder=1)
        ax.scatter(pts["head_clips_per_s"], pts["score"], facecolors="none", edgecolors="0.5", s=30,
                   zorder=2, label="head only (features cached)")
    ax.scatter(pts[x], pts["score"], c=np.where(pts["on_front"], "tab:red", "tab:blue"), s=40, zorder=3)
    for _, r in pts.iterrows():
        label = r["system"] + ("" if r["augment"] == "none" else f" +{r['augment']}")
        ax.annotate(label, (r[x], r["score"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = pts[pts["on_front"]].sort_values(x)
    if len(front) > 1:
        ax.step(front[x], front["score"], where="pre", color="tab:red", alpha=0.6, label="Pareto front")
    if len(front) > 1 or e2e:
        ax.legend(fontsize=8, loc="best")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xlabel("end-to-end inference throughput (clips/s: decode, features, head; log scale)" if e2e
                  else "inference throughput, head only (clips/s, log scale)")
    ax.set_ylabel(rows["metric"].iloc[0] if len(rows) else "score")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


def _cliques(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs (first, last index, ranks sorted) whose spread is below ``cd``: systems
    the Nemenyi test cannot tell apart, joined by one bar each."""
    runs = []
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in runs):
            runs.append((i, j))
    return runs


def critical_difference_png(names: list[str], mean_ranks: np.ndarray, cd: float, title: str) -> bytes:
    """Demsar's critical-difference diagram: mean ranks on an axis (1, the best, on the
    left), the critical difference drawn to scale above it, and a thick bar joining each
    group of systems whose ranks differ by less than it."""
    from matplotlib.figure import Figure

    order = np.argsort(mean_ranks, kind="stable")
    ranks = np.asarray(mean_ranks, dtype=float)[order]
    labels = [names[i] for i in order]
    k = len(labels)
    half = (k + 1) // 2
    cliques = _cliques(ranks, cd)
    fig = Figure(figsize=(7.5, 1.2 + 0.3 * half + 0.2 * len(cliques)))
    ax = fig.add_subplot()
    ax.set_xlim(0.5 - 0.9, k + 0.5 + 0.9)
    depth = 1.1 + 0.32 * half + 0.3 * len(cliques)
    ax.set_ylim(depth, -1.6)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", lw=1)
    for r in range(1, k + 1):
        ax.vlines(r, -0.12, 0, color="black", lw=1)
        ax.text(r, -0.25, str(r), ha="center", va="bottom", fontsize=8)
    ax.hlines(-1.1, 1, 1 + cd, color="tab:red", lw=2)
    ax.vlines([1, 1 + cd], -1.2, -1.0, color="tab:red", lw=1)
    ax.text(1 + cd / 2, -1.25, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8, color="tab:red")
    for i, (label, r) in enumerate(zip(labels, ranks, strict=True)):
        left = i < half
        y = 0.9 + 0.32 * (i if left else k - 1 - i) + 0.3 * len(cliques)
        x_end = 0.5 - 0.1 if left else k + 0.5 + 0.1
        ax.plot([r, r, x_end], [0, y, y], color="black", lw=0.8)
        ax.text(x_end + (-0.05 if left else 0.05), y, f"{label} ({r:.2f})", ha="right" if left else "left",
                va="center", fontsize=8)
    for n, (a, b) in enumerate(cliques):
        y = 0.35 + 0.3 * n
        ax.hlines(y, ranks[a] - 0.05, ranks[b] + 0.05, color="tab:blue", lw=4, alpha=0.8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def few_shot_png(g: pd.DataFrame, title: str) -> bytes:
    """Score against shots (log axis) with 95% intervals, one line per variant; the whole
    training part's score as a dashed line of the same colour."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    for i, (label, v) in enumerate(g.groupby("variant", sort=False)):
        colour = f"C{i % 10}"
        pts = v[v["shots"].notna()]
        k = pts["shots"].to_numpy(dtype=float)
        err = np.vstack([pts["mean"] - pts["ci_low"], pts["ci_high"] - pts["mean"]]).astype(float)
        ax.errorbar(k, pts["mean"].to_numpy(dtype=float), yerr=np.nan_to_num(err), marker="o", capsize=3,
                    color=colour, label=label)
        for full in v.loc[v["shots"].isna(), "mean"]:
            ax.axhline(full, color=colour, ls="--", lw=1)
    ax.set_xscale("log")
    ax.minorticks_off()
    ks = sorted(g["shots"].dropna().unique())
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("training clips per class (dashed: the whole training part)")
    ax.set_ylabel(g["metric"].iloc[0])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)
