"""Optuna storage, samplers, pruners and studies, and reading a study's best parameters.

A study records what it tunes in its user attributes (system, task, protocol, split hash,
folds, metric, search space). Resuming it with anything else is refused, so trials from
different questions never mix.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

from musicbench.errors import ConfigError, UnknownNameError

PRUNERS = ("median", "halving", "none")
HEARTBEAT_SECONDS = 30  # a trial whose worker died is failed after two missed beats
N_STARTUP_TRIALS = 8  # random trials before TPE models the results
SCHEMA_RETRIES = 5
ATTRS_WAIT_SECONDS = 10.0
SCHEMA_RACE = re.compile(r"already exists|duplicate key|UNIQUE constraint|database is locked", re.I)
SURPLUS = "surplus"  # user attribute of a trial failed for being one more than the study's target
DRIVER_HINTS = {
    "postgresql": "pip install psycopg2-binary",
    "mysql": "pip install pymysql (and use mysql+pymysql://...)",
}


def default_storage() -> str:
    return f"sqlite:///{Path.cwd() / 'optuna.db'}"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str | None) -> Any:
    """An Optuna RDB storage; a URL that cannot be opened raises a ConfigError saying why."""
    import optuna

    url = url or default_storage()
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        for attempt in range(SCHEMA_RETRIES):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                      heartbeat_interval=HEARTBEAT_SECONDS)
            except Exception as exc:
                # several processes opening a fresh database all create its schema: one
                # wins, the others fail on what it created and find it there when they retry
                if attempt + 1 == SCHEMA_RETRIES or not SCHEMA_RACE.search(str(exc)):
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ModuleNotFoundError as exc:
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        hint = DRIVER_HINTS.get(scheme, "install the SQLAlchemy driver for this database")
        raise ConfigError(f"Optuna storage {redact(url)}: the database driver is missing ({exc}); "
                          f"{hint}") from None
    except Exception as exc:  # noqa: BLE001 - any driver's failure becomes one clear message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot open Optuna storage {redact(url)}: {first}. Use an RDB URL such as "
            "sqlite:///path/optuna.db (its folder must exist) or "
            "postgresql+psycopg2://user:password@host/db"
        ) from None


def make_sampler(seed: int, worker: int = 0, n_before: int = 0) -> Any:
    """A seeded TPE sampler. The seed mixes in the worker index and the number of trials
    already in the study, so parallel workers and resumed runs do not replay the same
    random start; a fresh study with one worker is reproducible from ``seed`` alone."""
    import optuna

    digest = hashlib.sha256(f"{seed}:{worker}:{n_before}".encode()).digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True models conditional parameters (gamma only with rbf) jointly
        return optuna.samplers.TPESampler(seed=int.from_bytes(digest[:4], "little"),
                                          n_startup_trials=N_STARTUP_TRIALS, multivariate=True,
                                          group=True, constant_liar=True)


def make_pruner(kind: str, warmup: int = 2) -> Any:
    """Pruners act only on systems that report epochs; classical systems never are. No
    trial is pruned before epoch ``warmup``."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup, reduction_factor=3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner {kind!r}: must be one of {', '.join(PRUNERS)}")


def _space_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = [f"+{k}" for k in sorted(set(new) - set(old))]
    parts += [f"-{k}" for k in sorted(set(old) - set(new))]
    parts += [f"{k}: {json.dumps(old[k], sort_keys=True)} -> {json.dumps(new[k], sort_keys=True)}"
              for k in sorted(set(old) & set(new)) if old[k] != new[k]]
    return "; ".join(parts)


def _settings(fixed: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(fixed.items())) or "(none)"


def check_compatible(name: str, recorded: dict[str, Any], attrs: dict[str, Any]) -> None:
    """Refuse to add trials to a study that answers a different question."""
    for key in ("system", "task", "protocol", "metric"):
        if recorded.get(key) != attrs[key]:
            raise ConfigError(
                f"study {name!r} was created for {key} {recorded.get(key)!r}, not {attrs[key]!r}; "
                "pass another --study-name for a new study"
            )
    if recorded.get("search_space") != attrs["search_space"]:
        raise ConfigError(
            f"study {name!r} was created with another search space "
            f"({_space_diff(recorded.get('search_space') or {}, attrs['search_space'])}); its trials "
            "are kept. Restore the preset's [search_space] to resume it, or pass another "
            "--study-name to start a new study"
        )
    if (recorded.get("fixed_params") or {}) != attrs["fixed_params"]:
        raise ConfigError(
            f"study {name!r} was tuned with --set {_settings(recorded.get('fixed_params') or {})}, "
            f"not {_settings(attrs['fixed_params'])}; pass the same --set to resume it, or another "
            "--study-name for a new study"
        )
    if recorded.get("split_hash") != attrs["split_hash"] or recorded.get("folds") != attrs["folds"]:
        raise ConfigError(
            f"study {name!r} was tuned on other folds (split {recorded.get('split_hash')}, "
            f"{recorded.get('folds')} fold(s)); now split {attrs['split_hash']}, {attrs['folds']} "
            "fold(s). The data on disk or --folds changed; pass another --study-name"
        )


def open_study(name: str, storage: Any, attrs: dict[str, Any], sampler: Any = None,
               pruner: Any = None) -> Any:
    """Create the study and record ``attrs``, or load it and check it tunes the same thing."""
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        recorded = _recorded_attrs(study, attrs)
        if recorded:
            check_compatible(name, recorded, attrs)
            return study
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def _recorded_attrs(study: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes of an existing study. One that another command has just created
    gets them one by one right after: wait (a few seconds at most) until all are there."""
    deadline = time.monotonic() + ATTRS_WAIT_SECONDS
    while True:
        recorded = study.user_attrs
        if set(attrs) <= set(recorded) or time.monotonic() > deadline:
            return recorded
        time.sleep(0.2)


def load_study(name: str, storage_url: str | None) -> Any:
    """An existing study; an unknown name lists the studies the storage holds."""
    import optuna

    storage = open_storage(storage_url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.study.get_all_study_names(storage)
        where = redact(storage_url or default_storage())
        raise UnknownNameError(f"Optuna study in {where}", name, names) from None


def fail_stale_trials(study: Any) -> None:
    """Mark trials whose worker stopped beating as FAIL, so they are run again."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def finished_trials(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def load_tuned(study_name: str, storage_url: str | None = None) -> dict[str, dict[str, Any]]:
    """The best parameters of a ``musicbench tune`` study, for ``musicbench run --tuned``.

    Returns ``{system: {"params": ..., "study": name, "trials": n, "kind": "shared"}}``
    where ``n`` counts finished (complete or pruned) trials: the trial budget the
    parameters came from. Parameters a conditional search left unsampled are absent, so
    the preset's stand; parameters fixed with ``tune --set`` are included, as the trials
    used them. A ``tune --per-fold`` family (``NAME#fold0``, ...) gives instead
    ``"per_fold": {fold: params}``, its ``split_hash`` and ``"kind": "per-fold"``.
    """
    import optuna

    storage = open_storage(storage_url)
    names = set(optuna.study.get_all_study_names(storage))
    family = [n for n in names if n.startswith(f"{study_name}#fold")]
    if study_name in names or not family:
        system, params, trials, _ = _best(study_name, storage_url)
        return {system: {"params": params, "study": study_name, "trials": trials, "kind": "shared"}}
    per_fold, trials, attrs = {}, [], {}
    for name in family:
        system, params, n, attrs = _best(name, storage_url)
        per_fold[int(attrs["outer_fold"])] = params
        trials.append(n)
    missing = sorted(set(range(int(attrs["outer_folds"]))) - set(per_fold))
    if missing:
        raise ConfigError(f"per-fold studies {study_name!r}: no study for fold(s) {missing}; run "
                          "`musicbench tune --per-fold` to finish them")
    return {system: {"per_fold": per_fold, "study": study_name, "trials": min(trials), "kind": "per-fold",
                     "split_hash": attrs["split_hash"], "protocol": attrs["protocol"]}}


def _best(study_name: str, storage_url: str | None) -> tuple[str, dict[str, Any], int, dict[str, Any]]:
    """(system, best parameters with the fixed ones, finished trials, study attributes)."""
    from optuna.trial import TrialState

    study = load_study(study_name, storage_url)
    system = study.user_attrs.get("system")
    if not system:
        raise ConfigError(f"study {study_name!r} was not created by `musicbench tune` (no system "
                          "recorded); tune with musicbench to use --tuned")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ConfigError(f"study {study_name!r} has no completed trial yet; run `musicbench tune` "
                          "on it first")
    params = {**(study.user_attrs.get("fixed_params") or {}), **study.best_trial.params}
    return system, params, len(finished_trials(study)), dict(study.user_attrs)
