"""``musicbench results ls|rm``: the records of a run folder, listed or dropped by task,
system, status or key, without touching its files by hand."""

from __future__ import annotations

import argparse
import sys

from musicbench.errors import ConfigError, DataError
from musicbench.results.schema import CellRecord
from musicbench.results.store import ResultStore

STATUSES = ("ok", "failed", "superseded")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="list or remove the records of a run folder")
    rsub = p.add_subparsers(dest="results_command", required=True)
    for cmd, text in (("ls", "list records (the latest attempt of each cell; --history: every one)"),
                      ("rm", "remove the matching records, their attempts and predictions, and "
                             "rewrite results.csv")):
        q = rsub.add_parser(cmd, help=text)
        q.add_argument("folder", metavar="DIR", help="run folder (musicbench run --out DIR)")
        q.add_argument("--task", action="append", metavar="TASK[:VERSION]", help="repeatable")
        q.add_argument("--system", action="append", metavar="NAME", help="repeatable")
        q.add_argument("--status", choices=STATUSES, help="superseded: stale failures that no longer count")
        q.add_argument("--key", action="append", metavar="KEY",
                       help="cell key or a prefix of one; repeatable")
        if cmd == "ls":
            q.add_argument("--history", action="store_true", help="also every earlier attempt")


def _matches(rec: CellRecord, args) -> bool:
    return ((not args.task or any(t in (rec.task, f"{rec.task}:{rec.version}") for t in args.task))
            and (not args.system or rec.system in args.system)
            and (not args.status or rec.status == args.status)
            and (not args.key or any(rec.cell_key.startswith(k) for k in args.key)))


def _line(rec: CellRecord, status: str) -> str:
    why = (rec.details or {}).get("superseded") or rec.error or ""
    return (f"{rec.cell_key}  {rec.task}:{rec.version}  {rec.protocol}  fold {rec.fold}  {rec.system}  "
            f"seed {rec.seed}  {status}  {rec.finished_at or '-'}  {why[:120]}").rstrip()


def run(args) -> int:
    store = ResultStore(args.folder)
    if not store.cells_dir.is_dir():
        raise DataError(f"{args.folder}: no results here (expected a run folder with cells/, as "
                        "written by 'musicbench run --out DIR')")
    current, stale = store.current()
    chosen = [r for r in sorted(current + stale, key=lambda r: (r.task, r.protocol, r.system, r.fold,
                                                              r.seed, r.cell_key))
              if _matches(r, args)]
    if args.results_command == "ls":
        for rec in chosen:
            print(_line(rec, rec.status))
            for old in store.attempts(rec.cell_key) if args.history else ():
                print("  earlier " + _line(old, old.status))
        print(f"{len(chosen)} record(s)", file=sys.stderr)
        return 0
    if not (args.task or args.system or args.status or args.key):
        raise ConfigError("results rm needs at least one of --task, --system, --status, --key "
                          "(to drop a whole run folder, delete the folder)")
    for rec in chosen:
        store.remove(rec.cell_key)
        print(f"removed {_line(rec, rec.status)}")
    store.write_csv()
    print(f"{len(chosen)} record(s) removed; {store.root / 'results.csv'} rewritten", file=sys.stderr)
    return 0
