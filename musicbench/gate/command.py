"""``musicbench check``: the CI gate. Exit 0 when nothing regressed, 1 on a regression, 2 on bad input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from musicbench.errors import ConfigError


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="gate: compare results with a metric baseline and benchmarks with "
                                  "saved timings; exit 1 on a regression")
    p.add_argument("--results", metavar="DIR", help="run folder to check (musicbench run --out DIR)")
    p.add_argument("--baseline", metavar="FILE", help="metric baseline JSON (bench/baselines/*.json)")
    p.add_argument("--write-baseline", metavar="FILE",
                   help="write a metric baseline from --results instead of checking")
    p.add_argument("--tolerance", type=float, default=0.02,
                   help="absolute tolerance written into a new baseline (default 0.02)")
    p.add_argument("--metric", help="metric of a new baseline (default each task's primary metric)")
    p.add_argument("--speed", metavar="FILE", help="benchmark JSON to check (musicbench bench --out)")
    p.add_argument("--speed-baseline", metavar="FILE", help="saved benchmark JSON to compare --speed with")
    p.add_argument("--speed-base", metavar="REF",
                   help="same-machine speed gate: measure the benchmarks of git commit REF and of the "
                   "working tree in this job, alternately, and compare them (instead of a saved baseline)")
    p.add_argument("--speed-bench", metavar="PATH", action="append", default=[],
                   help="benchmark file of --speed-base, relative to the repository (repeatable; default "
                   "every bench/test_*.py)")
    p.add_argument("--speed-rounds", type=int, default=2, metavar="N",
                   help="alternate base and head N times; each benchmark keeps its fastest run (default 2)")
    p.add_argument("--max-slowdown", type=float, default=1.5,
                   help="fail when a benchmark takes more than this times its baseline (default 1.5)")
    p.add_argument("--stat", default="min", choices=["min", "median", "mean"],
                   help="benchmark statistic compared (default min: the least noisy on shared machines)")
    p.add_argument("--any-hardware", action="store_true",
                   help="gate speed even when the hardware differs from the baseline's")


def _check_speed(args: argparse.Namespace) -> bool:
    from musicbench.throughput.results import compare, format_diff, hardware_differences, load

    current, base = load(args.speed), load(args.speed_baseline)
    recorded = base.get("hardware", {})
    print(f"speed: {args.speed} against {args.speed_baseline} (recorded on {recorded.get('cpu_model', '?')}, "
          f"{recorded.get('cpu_cores_usable', '?')} usable cores, GPU {recorded.get('gpu') or 'none'}; "
          "--speed-base REF compares on this machine instead)")
    hw = hardware_differences(current, base)
    diffs = compare(current, base, args.stat, args.max_slowdown)
    print(format_diff(diffs, args.stat, args.max_slowdown))
    if hw and not args.any_hardware:
        print("speed NOT GATED: the hardware differs from the baseline's (" + "; ".join(hw)
              + "); rerun on the baseline's machine, save a new baseline, or pass --any-hardware")
        return True
    bad = [d for d in diffs if d.status in ("slower", "missing")]
    print(f"speed: {'FAIL' if bad else 'pass'} ({len(bad)} of {len(diffs)} benchmark(s) regressed)\n")
    return not bad


def _check_speed_same_machine(args: argparse.Namespace) -> bool:
    from musicbench.gate.continuous import measure_base_and_head, repo_root
    from musicbench.throughput.results import compare, format_diff

    root = repo_root(Path.cwd())
    paths = args.speed_bench or sorted(str(p.relative_to(root)) for p in (root / "bench").glob("test_*.py"))
    if not paths:
        raise ConfigError(f"--speed-base: no benchmarks in {root / 'bench'}; name them with --speed-bench")
    base, head, commit = measure_base_and_head(args.speed_base, paths, Path.cwd(), args.speed_rounds,
                                               log=lambda m: print(m, file=sys.stderr, flush=True))
    hw = head["hardware"]
    print(f"speed: working tree against {args.speed_base} ({commit[:10]}), both measured now on "
          f"{hw.get('cpu_model')} ({hw.get('cpu_cores_usable')} usable cores), fastest of "
          f"{args.speed_rounds} alternating round(s)")
    diffs = compare(head, base, args.stat, args.max_slowdown)
    print(format_diff(diffs, args.stat, args.max_slowdown))
    bad = [d for d in diffs if d.status == "slower"]
    print(f"speed: {'FAIL' if bad else 'pass'} ({len(bad)} of {len(diffs)} benchmark(s) slower)\n")
    return not bad


def run(args: argparse.Namespace) -> int:
    from musicbench.gate.baseline import check_metrics, format_metric_diff, load_baseline, make_baseline
    from musicbench.report.load import load_folders

    if args.write_baseline:
        if not args.results:
            raise ConfigError("--write-baseline needs --results DIR")
        data = make_baseline(load_folders([args.results]), args.tolerance, args.metric,
                             f"written from {args.results}")
        Path(args.write_baseline).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write_baseline).write_text(json.dumps(data, indent=1) + "\n")
        print(f"baseline of {len(data['entries'])} entries written to {args.write_baseline}", file=sys.stderr)
        return 0
    metrics = bool(args.baseline or args.results)
    speed = bool(args.speed or args.speed_baseline)
    if args.speed_base and speed:
        raise ConfigError("--speed-base measures both sides now: drop --speed/--speed-baseline")
    if args.speed_rounds < 1:
        raise ConfigError(f"--speed-rounds {args.speed_rounds}: must be >= 1")
    if metrics and not (args.baseline and args.results):
        raise ConfigError("the metric gate needs both --baseline FILE and --results DIR")
    if speed and not (args.speed and args.speed_baseline):
        raise ConfigError("the speed gate needs both --speed FILE and --speed-baseline FILE")
    if not (metrics or speed or args.speed_base):
        raise ConfigError("nothing to check: give --baseline FILE --results DIR and/or "
                          "--speed FILE --speed-baseline FILE or --speed-base REF")
    if args.max_slowdown <= 1:
        raise ConfigError(f"--max-slowdown {args.max_slowdown}: must be above 1, e.g. 1.5")
    passed = True
    if metrics:
        diffs = check_metrics(load_folders([args.results]), load_baseline(args.baseline))
        print(f"metrics: {args.results} against {args.baseline}")
        print(format_metric_diff(diffs))
        bad = [d for d in diffs if d.failing]
        print(f"metrics: {'FAIL' if bad else 'pass'} ({len(bad)} of {len(diffs)} entries regressed)\n")
        passed = not bad
    if speed:
        passed = _check_speed(args) and passed
    if args.speed_base:
        passed = _check_speed_same_machine(args) and passed
    print("check: PASS" if passed else "check: FAIL")
    return 0 if passed else 1
