"""Running a study: K worker processes share one Optuna study through its storage.

``trials`` is the number of finished (complete or pruned) trials the study should hold:
rerunning an interrupted command runs only the missing ones, and a larger number extends
the study. The missing trials are divided exactly among the local workers, so K workers
neither lose nor duplicate trials; each worker also stops once the study holds the target
counting running trials, which bounds the overshoot when commands on several machines
share one study.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from musicbench.errors import ConfigError, MusicbenchError
from musicbench.tuning.study import SURPLUS

PRUNE_WARMUP_MIN = 2  # epochs; a quarter of the preset's max_epochs when that is more
MAX_CONSECUTIVE_FAILURES = 3  # a worker whose trials keep failing stops: the cause is systematic


@dataclass(frozen=True)
class TuneConfig:
    task: str
    system: str
    protocol: str | None = None  # None: the task's default protocol
    trials: int | None = 20
    timeout: float | None = None
    storage: str | None = None  # None: sqlite optuna.db in the working directory
    study_name: str | None = None  # None: derived from system, task and protocol
    workers: int = 1
    seed: int = 0
    folds: int | None = None  # tune on the first N folds only; None: all
    fold: int | None = None  # tune on this outer fold only (one study of a per-fold family)
    fixed: dict[str, Any] = field(default_factory=dict)  # preset parameters set for every trial
    pruner: str = "median"
    data_home: str | None = None
    index_dir: str | None = None
    allow_partial: bool = False
    device: str = "cpu"
    tracking_uri: str | None = None
    track: bool = True


@dataclass
class Prepared:
    """What every worker needs: the study name and attributes, and the objective."""

    study_name: str
    attrs: dict[str, Any]
    objective: Any
    prune_warmup: int = PRUNE_WARMUP_MIN  # epochs a neural trial runs before it may be pruned


@dataclass
class TuneResult:
    study_name: str
    storage: str
    n_finished: int
    n_failed: int
    n_ran: int
    best_value: float | None
    best_params: dict[str, Any]
    metric: str
    errors: list[str]
    stopped_on_failures: bool


def prepare(cfg: TuneConfig, log: Any = None) -> Prepared:
    """Resolve task, data, protocol and search space, before any storage is touched.

    Warnings of the protocol (group leakage) go to ``log``; workers pass None, as the
    parent has reported them already.
    """
    from musicbench.protocol.experiment import TaskSource, open_clips, resolve_split
    from musicbench.protocol.metrics import primary_metric
    from musicbench.runtime import check_device
    from musicbench.systems import build_system
    from musicbench.tuning.objective import Objective, tuning_folds
    from musicbench.tuning.space import load_space

    if cfg.workers < 1:
        raise ConfigError(f"--workers {cfg.workers}: must be >= 1")
    if cfg.trials is None and cfg.timeout is None:
        raise ConfigError("give --trials, --timeout or both")
    if cfg.trials is not None and cfg.trials < 1:
        raise ConfigError(f"--trials {cfg.trials}: must be >= 1")
    if cfg.folds is not None and cfg.folds < 1:
        raise ConfigError(f"--folds {cfg.folds}: must be >= 1")
    if cfg.fold is not None and cfg.folds is not None:
        raise ConfigError("--per-fold tunes each fold on its own; drop --folds")
    check_device(cfg.device)
    space = load_space(cfg.system, cfg.fixed)
    probe = build_system(cfg.system, **cfg.fixed)  # bad names and values fail before any study
    # early epochs (learning-rate warm-up) say little about where a run ends up
    warmup = max(PRUNE_WARMUP_MIN, int(getattr(probe, "max_epochs", 0)) // 4)
    clipset = open_clips(TaskSource(cfg.task, cfg.data_home, cfg.index_dir, cfg.allow_partial))
    task = clipset.task
    split = resolve_split(cfg.protocol or task.spec.default_protocol, clipset, log)
    if clipset.missing and log:
        log(f"{task.ref}: partial data, tuning on {len(clipset)} of {clipset.n_index} tracks")
    folds = tuning_folds(clipset, split, cfg.folds, cfg.seed)
    if cfg.fold is not None:
        if not 0 <= cfg.fold < len(folds):
            raise ConfigError(f"fold {cfg.fold}: {split.protocol} has folds 0 to {len(folds) - 1}")
        folds = [folds[cfg.fold]]
    attrs = {
        "system": cfg.system, "task": task.ref, "protocol": split.protocol,
        "split_hash": split.hash, "folds": len(folds),
        "metric": primary_metric(probe.evaluation_kind(task.spec.kind)),
        "n_tracks_used": len(clipset), "n_tracks_index": clipset.n_index,
        "search_space": space.as_dict(), "fixed_params": dict(cfg.fixed),
    }
    name = cfg.study_name or f"{cfg.system}@{task.ref}@{split.protocol}"
    if cfg.fold is not None:
        attrs.update(outer_fold=cfg.fold, outer_folds=len(split.folds))
        name = per_fold_name(name, cfg.fold)
    return Prepared(name, attrs, Objective(cfg.system, space, folds, cfg.seed, cfg.device, cfg.fixed),
                    warmup)


def per_fold_name(family: str, fold: int) -> str:
    """The study of one outer fold in a ``--per-fold`` family named ``family``."""
    return f"{family}#fold{fold}"


def tune_per_fold(cfg: TuneConfig, log: Any = print) -> list[TuneResult]:
    """One study per outer fold, each on that fold's train and valid parts only, so that
    ``run --tuned`` can score every test fold with parameters its data never chose: a
    nested estimate. The studies are ``FAMILY#fold0``, ``FAMILY#fold1``, ..."""
    from musicbench.protocol.experiment import TaskSource, open_clips, resolve_split

    clipset = open_clips(TaskSource(cfg.task, cfg.data_home, cfg.index_dir, cfg.allow_partial))
    split = resolve_split(cfg.protocol or clipset.task.spec.default_protocol, clipset, None)
    family = cfg.study_name or f"{cfg.system}@{clipset.task.ref}@{split.protocol}"
    results = []
    for fold in range(len(split.folds)):
        log(f"fold {fold + 1}/{len(split.folds)}: study {per_fold_name(family, fold)!r}")
        results.append(tune(replace(cfg, fold=fold, study_name=family), log))
    return results


def _counts(study: Any) -> tuple[int, int]:
    from optuna.trial import TrialState

    from musicbench.tuning.study import finished_trials

    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if not t.user_attrs.get(SURPLUS)]
    return len(finished_trials(study)), len(failed)


class _StopRules:
    """After each trial: stop at the study's target, or after repeated failures."""

    def __init__(self, target: int | None):
        self.target, self.failures_in_a_row, self.gave_up = target, 0, False

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            self.gave_up = True
            study.stop()
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        if self.target is not None and len(study.get_trials(deepcopy=False, states=states)) >= self.target:
            study.stop()


def _surplus(study: Any, trial: Any, target: int) -> bool:
    """Whether ``target`` trials numbered before this one are finished or running: other
    processes started theirs at the same moment and this one is one too many. The
    storage numbers trials, so every process agrees on which ones are surplus."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.number < trial.number for t in study.get_trials(deepcopy=False, states=states)) >= target


def _optimize(cfg: TuneConfig, prep: Prepared, worker: int, n_trials: int | None, n_before: int,
              callbacks: list[Any]) -> bool:
    """Run this worker's share of trials; True when it stopped on repeated failures."""
    import optuna

    from musicbench.tuning.study import make_pruner, make_sampler, open_storage

    study = optuna.load_study(study_name=prep.study_name, storage=open_storage(cfg.storage),
                              sampler=make_sampler(cfg.seed, worker, n_before),
                              pruner=make_pruner(cfg.pruner, prep.prune_warmup))
    stop = _StopRules(cfg.trials)
    tag = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", tag)
        if cfg.trials is not None and _surplus(study, trial, cfg.trials):
            trial.set_user_attr(SURPLUS, True)
            study.stop()
            raise RuntimeError(f"the study already holds its {cfg.trials} trials")
        return prep.objective(trial)

    study.optimize(objective, n_trials=n_trials, timeout=cfg.timeout, catch=(Exception,),
                   callbacks=[*callbacks, stop], gc_after_trial=False)
    return stop.gave_up


def _worker_main(cfg: TuneConfig, worker: int, n_trials: int | None, n_before: int) -> None:
    """Entry point of a spawned worker process; exit code 3 means it gave up on failures."""
    from joblib.externals.loky import get_reusable_executor

    try:
        gave_up = _optimize(cfg, prepare(cfg), worker, n_trials, n_before, [])
    except MusicbenchError as exc:
        print(f"musicbench tune worker {worker}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        # a spawned process joins its children at exit: without this, feature extraction's
        # idle joblib workers would keep it alive until their idle timeout (minutes)
        get_reusable_executor().shutdown(wait=True)
    sys.exit(3 if gave_up else 0)


def shares(remaining: int | None, workers: int) -> list[int | None]:
    """``remaining`` trials divided among workers, differing by at most one."""
    if remaining is None:
        return [None] * workers
    return [remaining // workers + (i < remaining % workers) for i in range(workers)]


def tune(cfg: TuneConfig, log: Any = print) -> TuneResult:
    """Create or resume the study and run the trials missing to reach ``cfg.trials``."""
    from musicbench.tuning.study import (
        default_storage,
        fail_stale_trials,
        make_pruner,
        open_storage,
        open_study,
        redact,
    )

    prep = prepare(cfg, log)
    metric = prep.attrs["metric"]
    storage_url = cfg.storage or default_storage()
    study = open_study(prep.study_name, open_storage(storage_url), prep.attrs,
                       pruner=make_pruner(cfg.pruner, prep.prune_warmup))
    fail_stale_trials(study)
    n_before = len(study.get_trials(deepcopy=False))
    done, _ = _counts(study)
    remaining = None if cfg.trials is None else max(cfg.trials - done, 0)
    tracker = None
    if cfg.track:
        from musicbench.tuning.tracking import StudyTracker

        tracker = StudyTracker(prep.study_name, redact(storage_url), cfg.tracking_uri)
        tracker.start(prep.attrs)
    gave_up = False
    try:
        if remaining == 0:
            log(f"study {prep.study_name!r} already holds {done} finished trial(s); "
                "raise --trials to extend it")
        elif cfg.workers == 1:
            callbacks = [lambda s, t: tracker.log_trial(t, metric)] if tracker else []
            gave_up = _optimize(cfg, prep, 0, remaining, n_before, callbacks)
        else:
            gave_up = _run_workers(cfg, prep, shares(remaining, cfg.workers), n_before, study, tracker, log)
    finally:  # an interrupted study still gets its finished trials and best parameters logged
        if tracker:
            tracker.finish(study, metric)
    trials = study.get_trials(deepcopy=False)
    finished, failed = _counts(study)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None
    errors = [f"trial {t.number}: {t.user_attrs['error']}" for t in trials[n_before:]
              if t.state.name == "FAIL" and "error" in t.user_attrs]
    return TuneResult(prep.study_name, redact(storage_url), finished, failed, len(trials) - n_before,
                      best.value if best else None, dict(best.params) if best else {}, metric,
                      errors, gave_up)


def _run_workers(cfg: TuneConfig, prep: Prepared, counts: list[int | None], n_before: int, study: Any,
                 tracker: Any, log: Any) -> bool:
    """Spawn one process per worker; this process logs their trials to MLflow meanwhile."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(cfg, i, n, n_before), name=f"tune-worker-{i}")
             for i, n in enumerate(counts) if n != 0]
    for p in procs:
        p.start()
    log(f"study {prep.study_name!r}: {len(procs)} worker process(es) started")
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=2.0 / len(procs))
            if tracker:
                tracker.sync(study, prep.attrs["metric"])
    except KeyboardInterrupt:
        for p in procs:
            p.join()
        raise
    codes = [p.exitcode for p in procs]
    bad = [(p.name, c) for p, c in zip(procs, codes, strict=True) if c not in (0, 3)]
    if bad:
        raise ConfigError(f"worker process(es) failed: {', '.join(f'{n} (exit {c})' for n, c in bad)}; "
                          "their messages are above. Finished trials are kept in the study.")
    return 3 in codes
