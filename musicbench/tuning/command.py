"""``musicbench tune``: Optuna over a preset's search space, on validation data only."""

from __future__ import annotations

import argparse
import json
import sys
import time

from musicbench import flags


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0 seconds")
    return value


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="tune a system's parameters with Optuna on validation data",
                       description="Optuna over the preset's [search_space]. Trials score the mean "
                       "validation metric over folds; test parts are never read. The study lives "
                       "in --storage, so rerunning resumes it and several workers can share it.")
    p.add_argument("--task", required=True, metavar="TASK[:VERSION]")
    p.add_argument("--system", required=True, metavar="NAME", help="system preset (systems/)")
    p.add_argument("--protocol", metavar="SPEC", help="official[:N] | kfold:K[:SEED] | "
                   "group-kfold:FIELD[:K[:SEED]] | manifest:PATH (default: the task's)")
    p.add_argument("--trials", type=int, metavar="N", help="finished trials the study should hold "
                   "(default 20, or unlimited with --timeout); a rerun adds only the missing ones")
    p.add_argument("--timeout", type=_positive_float, metavar="S",
                   help="stop starting trials after S seconds")
    p.add_argument("--storage", metavar="URL", help="Optuna RDB storage URL (default "
                   "sqlite:///./optuna.db; postgresql+psycopg2://... shares a study across machines)")
    p.add_argument("--study-name", metavar="NAME", help="default SYSTEM@TASK:VERSION@PROTOCOL")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and the systems (default 0)")
    p.add_argument("--folds", type=int, metavar="N", help="tune on the first N folds only (default all)")
    p.add_argument("--per-fold", action="store_true", help="one study per outer fold (NAME#fold0, ...), "
                   "each on that fold's train/valid parts only; run --tuned NAME then scores each test "
                   "fold with its own fold's best parameters (a nested estimate)")
    p.add_argument("--set", dest="fixed", type=flags.setting, action="append", default=[],
                   metavar="KEY=VALUE", help="fix a preset parameter for every trial (repeatable); "
                   "recorded with the study and applied by run --tuned")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="pruner of neural systems' per-epoch scores (default median)")
    flags.add_data(p, partial="tune")
    flags.add_device(p)
    flags.add_tracking(p)
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import optuna

    from musicbench.tuning.tune import TuneConfig, tune, tune_per_fold

    optuna.logging.set_verbosity(optuna.logging.WARNING if args.quiet else optuna.logging.INFO)
    trials = args.trials if args.trials is not None or args.timeout else 20
    cfg = TuneConfig(
        task=args.task, system=args.system, protocol=args.protocol, trials=trials,
        timeout=args.timeout, storage=args.storage, study_name=args.study_name, workers=args.workers,
        seed=args.seed, folds=args.folds, fixed=dict(args.fixed), pruner=args.pruner,
        data_home=args.data_home,
        index_dir=args.index_dir, allow_partial=args.allow_partial, device=args.device,
        tracking_uri=args.tracking_uri, track=not args.no_mlflow,
    )
    t0 = time.perf_counter()
    results = tune_per_fold(cfg, _progress) if args.per_fold else [tune(cfg, log=_progress)]
    seconds = time.perf_counter() - t0
    for result in results:
        print(f"study       {result.study_name}")
        print(f"storage     {result.storage}")
        print(f"trials      {result.n_ran} run now; study holds {result.n_finished} "
              f"finished, {result.n_failed} failed")
        for error in result.errors[:3]:
            print(f"failed      {error}")
        if result.best_value is None:
            print(f"musicbench: error: no trial of {result.study_name} has completed; see the failures "
                  "above", file=sys.stderr)
            return 1
        print(f"best valid  {result.metric} {result.best_value:.4f}")
        print(f"best params {json.dumps(result.best_params, sort_keys=True)}")
    print(f"time        {seconds:.1f}s")
    hint = ["musicbench run", f"--task {args.task}", f"--system {args.system}"]
    for flag, value in (("--protocol", args.protocol), ("--data-home", args.data_home),
                        ("--index-dir", args.index_dir),
                        ("--storage", args.storage and results[0].storage)):
        if value:
            hint.append(f"{flag} {value}")
    if args.allow_partial:
        hint.append("--allow-partial")
    name = results[0].study_name.rpartition("#fold")[0] if args.per_fold else results[0].study_name
    print(f"evaluate    {' '.join(hint)} --tuned '{name}'")
    failed = [r for r in results if r.stopped_on_failures]
    if failed:
        print(f"musicbench: error: stopped after repeated trial failures: {failed[0].errors[-1:]}",
              file=sys.stderr)
        return 1
    return 0
