"""The musicbench command line: a contract other tools script against.

Exit codes: 0 success; 1 some cells failed or a check did not pass; 2 bad input
(unknown names, malformed options, missing data), with a message saying what to do.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from musicbench import flags
from musicbench.errors import ConfigError, DataError, MusicbenchError, UnknownNameError
from musicbench.runner.executors import summaries as executor_summaries
from musicbench.runtime import QUIET_ENV

RUN_ENVIRONMENT = """environment:
  MLFLOW_TRACKING_URI    where cells are logged (default sqlite:///./mlflow.db); --tracking-uri wins
  MUSICBENCH_DATA_HOME   default --data-home;  MUSICBENCH_INDEX_DIR  default --index-dir
  MUSICBENCH_CACHE       feature cache and generated data (default ~/.cache/musicbench)
  MUSICBENCH_JOBS        extraction processes (default: all cores)
  MUSICBENCH_PROGRESS_SECONDS  seconds between progress lines when stderr is not a terminal (10)
  MUSICBENCH_QUIET       set: no progress bars or lines (what --quiet sets)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musicbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("list", help="list registered tasks, systems, suites, encoders, or the "
                       "entries of any registry (metrics, protocols, executors, ...)")
    p.add_argument("what", nargs="?", help=f"{', '.join(PRESET_LISTS)}, or a registry's kind "
                   "(system-families, metrics, protocols, ...); none: every registry, by kind")
    p.add_argument("--params", action="store_true",
                   help="systems: also each one's parameters and Optuna search space")

    data = sub.add_parser("data", help="check or fetch datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("status", help="tracks in the index, on disk, missing, failing checksums")
    p.add_argument("task", metavar="TASK[:VERSION]")
    flags.add_data(p)
    p.add_argument("--no-checksums", action="store_true", help="skip md5 verification (faster)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p = dsub.add_parser("fetch", help="download a dataset with mirdata (needs the network)")
    p.add_argument("task", metavar="TASK[:VERSION]")
    flags.add_data(p)

    p = sub.add_parser("run", help="run a suite (default: the demo suite on synthetic data)",
                       epilog=RUN_ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", help="suite name (bench/suites); default demo, or adhoc with --task")
    p.add_argument("--task", action="append", metavar="TASK[:VERSION]", help="repeatable")
    p.add_argument("--system", action="append", metavar="NAME", help="repeatable")
    p.add_argument("--protocol", action="append", metavar="SPEC",
                   help="official[:N] | kfold:K[:SEED] | group-kfold:FIELD[:K[:SEED]] | "
                        "manifest:PATH (repeatable)")
    p.add_argument("--seeds", type=flags.seeds, help="comma-separated seeds, e.g. 0,1,2")
    flags.add_data(p, partial="run")
    p.add_argument("--out", help="results folder (default runs/SUITE)")
    flags.add_tracking(p)
    flags.add_device(p)
    flags.add_executor(p, executor_summaries())
    p.add_argument("--tuned", metavar="STUDY", help="use the best parameters of an Optuna study "
                   "(musicbench tune) for its system; rows are marked tuned")
    p.add_argument("--storage", help="Optuna storage URL of --tuned (default sqlite:///optuna.db)")
    p.add_argument("--quiet", action="store_true", help="print only the leaderboard")
    p.add_argument("--retry-failed", action="store_true",
                   help="run only the cells whose latest attempt in --out failed")

    for name, module in PLUGIN_COMMANDS.items():
        importlib.import_module(module).add_parser(sub, name)
    return parser


def _listed(names: list[str], describe) -> int:
    """Print ``describe(name)`` for each name; a preset that cannot be read is listed as
    broken with its error, and the others are still listed (exit 1 if any is broken)."""
    broken = 0
    for name in names:
        try:
            print(describe(name))
        except MusicbenchError as exc:
            broken += 1
            print(f"{name:24s} BROKEN: {exc}")
    return 1 if broken else 0


def _task_line(name: str) -> str:
    from musicbench.tasks import get_spec
    from musicbench.tasks.loader import task_versions

    s = get_spec(name)
    return (f"{name:34s} {','.join(task_versions(s)):22s} {s.kind:10s} {s.default_protocol:22s} "
            f"{s.description}")


def _system_lines(name: str, params: bool) -> str:
    from musicbench.systems import build_system, get_preset

    p = get_preset(name)
    build_system(name)  # a preset whose parameters do not validate is broken
    lines = [f"{name:24s} {p['family']:10s} {p.get('description', '')}"]
    if params:
        lines += [f"    {k} = {v!r}" for k, v in p["params"].items()]
        lines += [f"    search {k}: {v}" for k, v in p["search_space"].items()]
    return "\n".join(lines)


PRESET_LISTS = ("tasks", "systems", "suites", "encoders")


def _registry_lists() -> dict[str, Any]:
    """Every registry under its plural, hyphenated kind: ``system-families``, ``metrics``."""
    from musicbench.errors import plural
    from musicbench.extensions import all_registries

    return {plural(kind).replace(" ", "-"): r for kind, r in all_registries().items()}


def _list_registry(what: str, registry: Any) -> None:
    print(f"{what}: {registry.doc}")
    for name in registry.names():
        try:
            summary = registry.summary(name)
        except ImportError as exc:  # an optional package that is not installed
            summary = f"unavailable: {exc}"
        print(f"  {name:22s} {summary}  [{registry.source(name)}]")


def cmd_list(args) -> int:
    if args.what is None:
        for what, registry in sorted(_registry_lists().items()):
            _list_registry(what, registry)
        print(f"presets: {', '.join(PRESET_LISTS)} (musicbench list NAME)")
        return 0
    if args.what not in PRESET_LISTS:
        registries = _registry_lists()
        if args.what not in registries:
            raise UnknownNameError("list", args.what, [*PRESET_LISTS, *registries])
        _list_registry(args.what, registries[args.what])
        return 0
    if args.what == "tasks":
        from musicbench.tasks import task_names

        print(f"{'name':34s} {'versions':22s} {'kind':10s} {'default protocol':22s} description")
        return _listed(task_names(), _task_line)
    if args.what == "systems":
        from musicbench.systems import system_names

        return _listed(system_names(), lambda n: _system_lines(n, args.params))
    elif args.what == "encoders":
        from musicbench.encoders import describe_encoder, encoder_names

        print(f"{'name':16s} {'family':8s} {'licence':11s} {'rate':>6s} {'dims':>9s}  weights")
        for name in encoder_names():
            r = describe_encoder(name)
            if r["available"]:
                dims = f"{r['scene_embedding_size']}/{r['timestamp_embedding_size']}"
                print(f"{name:16s} {r['family']:8s} {r['licence']:11s} {r['sample_rate']:6d} {dims:>9s}  "
                      f"{r['source']}")
            else:
                print(f"{name:16s} {r['family']:8s} {r['licence']:11s} {'-':>6s} {'-':>9s}  "
                      f"unavailable: {r['reason']}")
    else:
        from musicbench.runner.suite import get_suite, suite_names

        def line(name: str) -> str:
            s = get_suite(name)
            return f"{name:20s} {len(s.tasks)} task(s) x {len(s.systems)} system(s)  {s.description}"

        return _listed(suite_names(), line)
    return 0


def cmd_data(args) -> int:
    from musicbench.tasks import get_task

    task = get_task(args.task, args.data_home, args.index_dir)
    if args.data_command == "fetch":
        from musicbench.tasks.fetch import fetch

        fetch(task)
        return 0
    status = task.status(checksums=not args.no_checksums)
    failing = 1 if status["missing"] or status["bad_checksum"] or status["damaged"] else 0
    if args.json:
        print(json.dumps(status, indent=1))
        return failing
    print(f"task        {status['task']}")
    print(f"index       {status['index']}")
    print(f"data home   {status['data_home']}")
    print(f"in index    {status['in_index']}")
    print(f"on disk     {status['on_disk']}")
    print(f"missing     {status['missing']}")
    checked = "not checked" if args.no_checksums else str(status["bad_checksum"])
    print(f"bad md5     {checked}")
    print(f"damaged     {status['damaged']}")
    for what, ids in (("missing", status["missing_ids"]), ("bad md5", status["bad_checksum_ids"])):
        for track_id in ids:
            print(f"  {what:9s} {track_id}")
    for track_id, why in status["damaged_ids"].items():
        print(f"  damaged   {track_id}: {why}")
    return failing


def _leaderboard(out: Path, store) -> str:
    """``out``'s leaderboard, written to ``leaderboard.md``; compiled again only when the
    results changed (``leaderboard.key`` holds a digest of ``results.csv`` and the code
    version), so a rerun with nothing to do imports none of the report's statistics."""
    import hashlib

    from musicbench.runtime import code_version

    results, cached, key_file = out / "results.csv", out / "leaderboard.md", out / "leaderboard.key"
    key = (hashlib.sha1(results.read_bytes() + code_version().encode()).hexdigest()
           if results.exists() else None)
    if key and cached.exists() and key_file.exists() and key_file.read_text() == key:
        return cached.read_text()
    from musicbench.report.leaderboard import to_markdown
    from musicbench.report.load import load_folders

    board = to_markdown(load_folders([out])) if store.records() else "No results.\n"
    cached.write_text(board)
    if key:
        key_file.write_text(key)
    return board


def cmd_run(args) -> int:
    """``run``; ``--quiet`` holds for this command and the workers it starts (they inherit
    the environment), not for what the calling process does next."""
    before = os.environ.get(QUIET_ENV)
    if args.quiet:
        os.environ[QUIET_ENV] = "1"
    try:
        return _run(args)
    finally:
        if before is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = before


def _run(args) -> int:
    from musicbench.results import ResultStore
    from musicbench.runner import memo
    from musicbench.runner.options import RunOptions
    from musicbench.runner.suite import Suite, get_suite

    if args.suite:
        suite = get_suite(args.suite)
    elif args.task:
        if not args.system:
            raise ConfigError("--task without --suite needs at least one --system")
        suite = Suite("adhoc", tuple(args.task), tuple(args.system))
    else:
        suite = get_suite("demo")
    suite = suite.with_overrides(tasks=args.task, systems=args.system, protocols=args.protocol,
                                 seeds=args.seeds)
    if args.tuned:
        from musicbench.tuning import load_tuned

        tuned = load_tuned(args.tuned, args.storage)  # system -> {params or per_fold, study, trials, kind}
        suite = suite.with_overrides(
            params={**suite.params, **{s: {**suite.params.get(s, {}), **t["params"]}
                                       for s, t in tuned.items() if "params" in t}},
            tuned={**suite.tuned, **tuned},
        )
    out = Path(args.out or Path("runs") / suite.name)
    opts = RunOptions(out=out, data_home=args.data_home, index_dir=args.index_dir,
                      allow_partial=args.allow_partial, tracking_uri=args.tracking_uri,
                      track=not args.no_mlflow, device=args.device, quiet=args.quiet,
                      on_bad_track=args.on_bad_track, verify=args.verify, retry_failed=args.retry_failed,
                      executor=args.executor, jobs=args.jobs, scheduler=args.scheduler)
    store = ResultStore(out)
    done = memo.finished(store, suite, opts)  # nothing to do: none of what running needs is imported
    if done is None:
        from musicbench.runner.execute import Runner

        runner = Runner(suite, opts)
        store = runner.run()
        c = runner.counts
    else:
        c = {"ok": 0, "failed": 0, "skipped": done}
    print(_leaderboard(out, store))
    stale = len(store.current()[1])
    print(f"{c['ok']} cell(s) run, {c['skipped']} already finished, {c['failed']} failed"
          + (f", {stale} stale record(s) superseded" if stale else "")
          + f"; results in {out}/results.csv", file=sys.stderr)
    return 1 if c["failed"] else 0


COMMANDS = {"list": cmd_list, "data": cmd_data, "run": cmd_run}
# Commands living in their own modules: name -> module defining add_parser(sub, name) and run(args)
PLUGIN_COMMANDS: dict[str, str] = {
    "tune": "musicbench.tuning.command",
    "report": "musicbench.report.command",
    "bench": "musicbench.throughput.command",
    "check": "musicbench.gate.command",
    "results": "musicbench.results.command",
    "pretrain": "musicbench.pretrain.command",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import musicbench

        print(musicbench.__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 0
    try:
        if args.command in PLUGIN_COMMANDS:
            return importlib.import_module(PLUGIN_COMMANDS[args.command]).run(args)
        return COMMANDS[args.command](args)
    except (MusicbenchError, DataError) as exc:
        print(f"musicbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        done = "trials are kept in the study" if args.command == "tune" else "cells are kept"
        print(f"musicbench: interrupted; finished {done}, rerun the same command to complete "
              "the rest", file=sys.stderr)
        return 130
