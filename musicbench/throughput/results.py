"""Benchmark results (pytest-benchmark JSON plus a ``hardware`` descriptor): tables and comparisons."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicbench.errors import DataError

# Hardware fields that must agree for timings to be comparable.
HARDWARE_KEYS = ("device", "cpu_model", "cpu_cores_usable", "gpu")


def load(path: str | Path) -> dict[str, Any]:
    """A benchmark JSON written by 'musicbench bench' (or pytest --benchmark-json)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"benchmark file {path}: cannot read it ({exc}); write one with "
                        "'musicbench bench --out FILE'") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise DataError(f"benchmark file {path}: no 'benchmarks' list; is it a pytest-benchmark JSON?")
    data.setdefault("hardware", data.get("machine_info", {}).get("hardware", {}))
    return data


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["fullname"]: b for b in data["benchmarks"]}


def _fmt_extra(extra: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items())


def summary_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: each benchmark's min/median/mean in ms, rounds and its extra measures."""
    headers = ["benchmark", "min ms", "median ms", "mean ms", "rounds", "measures"]
    rows = []
    for name, b in sorted(_by_name(data).items()):
        s = b["stats"]
        rows.append([name, f"{s['min'] * 1e3:.3f}", f"{s['median'] * 1e3:.3f}", f"{s['mean'] * 1e3:.3f}",
                     str(s.get("rounds", "")), _fmt_extra(b.get("extra_info") or {})])
    return headers, rows


@dataclass(frozen=True)
class SpeedDiff:
    name: str
    baseline_s: float | None
    current_s: float | None
    ratio: float | None  # current / baseline: above 1 is slower
    status: str  # ok | slower | faster | missing | new


def compare(current: dict[str, Any], baseline: dict[str, Any], stat: str = "min",
            max_ratio: float = 1.5) -> list[SpeedDiff]:
    """Per benchmark, the time ratio current/baseline on ``stat``; slower beyond ``max_ratio`` is flagged.

    ``faster`` marks a ratio below 1/max_ratio (worth refreshing the baseline); a benchmark
    of the baseline absent from the current run is ``missing``, a new one is ``new``.
    """
    cur, base = _by_name(current), _by_name(baseline)
    out = []
    for name in sorted(set(cur) | set(base)):
        if name not in cur:
            out.append(SpeedDiff(name, base[name]["stats"][stat], None, None, "missing"))
        elif name not in base:
            out.append(SpeedDiff(name, None, cur[name]["stats"][stat], None, "new"))
        else:
            b, c = base[name]["stats"][stat], cur[name]["stats"][stat]
            ratio = c / b if b > 0 else float("inf")
            status = "slower" if ratio > max_ratio else "faster" if ratio < 1 / max_ratio else "ok"
            out.append(SpeedDiff(name, b, c, ratio, status))
    return out


def hardware_differences(current: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Human-readable hardware fields that differ between two runs (timings then are not comparable)."""
    a, b = current.get("hardware", {}), baseline.get("hardware", {})
    return [f"{k}: {b.get(k)!r} -> {a.get(k)!r}" for k in HARDWARE_KEYS if a.get(k) != b.get(k)]


def format_diff(diffs: list[SpeedDiff], stat: str, max_ratio: float) -> str:
    """A fixed-width table of a comparison, slowest ratio first."""
    order = {"slower": 0, "missing": 1, "ok": 2, "faster": 3, "new": 4}
    diffs = sorted(diffs, key=lambda d: (order[d.status], -(d.ratio or 0)))
    width = max([len(d.name) for d in diffs] + [9])
    lines = [f"{'benchmark':{width}s}  {'baseline':>12s}  {'current':>12s}  {'ratio':>7s}  status "
             f"({stat} time; slower above x{max_ratio:g})"]
    for d in diffs:
        b = "—" if d.baseline_s is None else f"{d.baseline_s * 1e3:.3f} ms"
        c = "—" if d.current_s is None else f"{d.current_s * 1e3:.3f} ms"
        r = "—" if d.ratio is None else f"x{d.ratio:.2f}"
        status = d.status.upper() if d.status in ("slower", "missing") else d.status
        lines.append(f"{d.name:{width}s}  {b:>12s}  {c:>12s}  {r:>7s}  {status}")
    return "\n".join(lines)
