"""``musicbench bench``: run the pytest-benchmark suites of ``bench/`` and write one JSON.

The JSON is pytest-benchmark's own (so its tools read it) plus a ``hardware`` descriptor.
Benchmarks read the device from ``MUSICBENCH_BENCH_DEVICE`` (the ``bench_device`` fixture).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import musicbench
from musicbench import flags
from musicbench.errors import ConfigError
from musicbench.runtime import benchmark_env


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="run the throughput benchmarks of bench/ and write JSON with a "
                                  "hardware descriptor")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="benchmark files or folders (default: every bench/test_*.py)")
    flags.add_device(p, choices="cpu or cuda[:N]")
    p.add_argument("--out", help="JSON file to write (default runs/bench/YYYYmmdd-HHMMSS.json)")
    p.add_argument("--compare", metavar="FILE", help="a saved benchmark JSON to compare with")
    p.add_argument("--select", metavar="EXPR", help="pytest -k expression choosing benchmarks")
    p.add_argument("--stat", default="min", choices=["min", "median", "mean"],
                   help="statistic compared with --compare (default min: the least noisy)")
    p.add_argument("--max-slowdown", type=float, default=1.5,
                   help="ratio above which --compare flags a benchmark as slower (default 1.5)")


def bench_dir() -> Path:
    """``bench/`` of the working directory if it holds benchmarks, else the source checkout's."""
    for d in (Path.cwd() / "bench", Path(musicbench.__file__).resolve().parent.parent / "bench"):
        if any(d.glob("test_*.py")):
            return d
    raise ConfigError("no benchmarks found: expected bench/test_*.py in the working directory or the "
                      "musicbench source checkout")


def run(args: argparse.Namespace) -> int:
    from musicbench.runtime import check_device
    from musicbench.throughput.hardware import describe
    from musicbench.throughput.results import compare, format_diff, hardware_differences, load, summary_table

    check_device(args.device)
    if args.max_slowdown <= 1:
        raise ConfigError(f"--max-slowdown {args.max_slowdown}: must be above 1, e.g. 1.5")
    baseline = load(args.compare) if args.compare else None
    root = bench_dir()
    paths = [str(Path(p).resolve()) for p in args.paths] or [str(root)]
    out = Path(args.out or Path("runs") / "bench" / f"{datetime.now():%Y%m%d-%H%M%S}.json")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", "--benchmark-only",
               f"--benchmark-json={raw}", "--rootdir", str(root.parent)]
        if args.select:
            cmd += ["-k", args.select]
        env = benchmark_env(MUSICBENCH_BENCH_DEVICE=args.device)
        rc = subprocess.run(cmd, cwd=root.parent, env=env).returncode
        if not raw.is_file():
            print(f"musicbench: benchmarks did not run (pytest exit {rc})", file=sys.stderr)
            return 1
        data = json.loads(raw.read_text())
    data["hardware"] = describe(args.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    headers, rows = summary_table(data)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    hw = data["hardware"]
    print(f"\n{len(rows)} benchmark(s) on {hw['cpu_model']} ({hw['cpu_cores_usable']} usable cores), "
          f"GPU {hw['gpu'] or 'none'}, device {args.device}; written to {out}", file=sys.stderr)
    if baseline is not None:
        print(f"\ncompared with {args.compare}:")
        for line in hardware_differences(data, baseline):
            print(f"  hardware differs, timings not comparable: {line}")
        diffs = compare(data, baseline, args.stat, args.max_slowdown)
        print(format_diff(diffs, args.stat, args.max_slowdown))
    if rc != 0:
        print(f"musicbench: some benchmarks failed (pytest exit {rc}); see the output above", file=sys.stderr)
        return 1
    return 0
