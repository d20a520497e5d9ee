"""``musicbench report``: compile results (run folders or an MLflow experiment) into a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from musicbench import flags
from musicbench.errors import ConfigError, DataError


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="compile leaderboards, significance, ablations and throughput "
                                  "from run folders or an MLflow experiment")
    p.add_argument("dirs", nargs="*", metavar="DIR",
                   help="run folder(s) written by 'musicbench run' (or folders holding several)")
    p.add_argument("--experiment", metavar="NAME", help="read the cells of this MLflow experiment "
                   "(a suite name) instead of run folders")
    flags.add_tracking(p, optional=False)
    p.add_argument("--format", default="md,html,csv,json", help="comma-separated: md, html, csv, json "
                   "(default all)")
    p.add_argument("--out", help="output folder (default DIR/report, or reports/NAME with --experiment)")
    p.add_argument("--title", help="report title (default from the source)")
    p.add_argument("--reference", metavar="SYSTEM", help="reference system of the system ablation "
                   "table (every other system's delta against it)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired tests "
                   "(default 0.05)")
    p.add_argument("--correction", choices=["holm", "bh", "none"], default="holm",
                   help="count the tests of one table together: Holm (family-wise error, default), "
                   "Benjamini-Hochberg (false-discovery rate) or none")
    p.add_argument("--bench", metavar="FILE", help="a 'musicbench bench' JSON to include as a "
                   "benchmark table")


def run(args: argparse.Namespace) -> int:
    from musicbench.report.build import build
    from musicbench.report.display import leaderboard_section
    from musicbench.report.export import parse_formats, write_report
    from musicbench.report.load import load_experiment, load_folders
    from musicbench.report.markdown import block_markdown

    formats = parse_formats(args.format)
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha {args.alpha}: must be between 0 and 1, e.g. 0.05")
    if bool(args.dirs) == bool(args.experiment):
        raise ConfigError("give either run folder(s) DIR or --experiment NAME (not both)")
    if args.experiment:
        out = Path(args.out or Path("reports") / args.experiment)
        results = load_experiment(args.experiment, args.tracking_uri, out / ".artifacts")
        title = args.title or f"musicbench report — {args.experiment} (MLflow)"
    else:
        out = Path(args.out or Path(args.dirs[0]) / "report")
        results = load_folders(args.dirs)
        title = args.title or f"musicbench report — {', '.join(Path(d).name for d in args.dirs)}"
    bench = None
    if args.bench:
        try:
            bench = json.loads(Path(args.bench).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"--bench {args.bench}: cannot read a benchmark JSON ({exc})") from None
    if args.reference and args.reference not in set(results["system"]):
        raise ConfigError(f"--reference {args.reference!r}: no results for it; systems here: "
                          f"{', '.join(sorted(set(results['system'])))}")
    report = build(results, title, args.alpha, args.reference, bench, correction=args.correction)
    written = write_report(report, out, formats)
    for block in leaderboard_section(report).blocks:
        print("\n".join(block_markdown(block, level=2)))
    print(f"{len(written)} file(s) written to {out}", file=sys.stderr)
    return 0
