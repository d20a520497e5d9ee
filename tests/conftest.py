"""Shared fixtures: an isolated workspace per test session and the synthetic task's fold.

Tests are grouped by what they check: ``unit/`` one module's behaviour, ``contracts/``
what every registered entry of a kind must do (parametrised over the registry, so a new
entry needs no new test code), ``e2e/`` whole jobs through the CLI, subprocesses and real
servers. Helpers shared between them are in ``helpers.py``.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_env(tmp_path_factory):
    """Caches, MLflow store and working files of the whole session live in a temp folder."""
    root = tmp_path_factory.mktemp("musicbench")
    old = dict(os.environ)
    os.environ["MUSICBENCH_CACHE"] = str(root / "cache")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ.pop("MUSICBENCH_DATA_HOME", None)
    os.environ.pop("MUSICBENCH_INDEX_DIR", None)
    os.environ.setdefault("MUSICBENCH_JOBS", "2")
    yield root
    os.environ.clear()
    os.environ.update(old)


@pytest.fixture(scope="session")
def synth_task():
    """The small synthetic task (version mini: 6 classes x 12 clips of 3 s)."""
    from musicbench.tasks import get_task

    return get_task("synth_genre:mini")


@pytest.fixture(scope="session")
def synth_clipset(synth_task):
    return synth_task.clips()


@pytest.fixture(scope="session")
def synth_fold(synth_clipset):
    """One fold of the mini synthetic task (performer-disjoint), as (train, valid, test) ClipData."""
    from musicbench.protocol.experiment import resolve_split

    # validation shares performers with training here: three of the four performers train,
    # as systems are tested on what they learn, not on the protocol
    fold = resolve_split("group-kfold:performer:valid=stratified", synth_clipset).folds[0]
    return tuple(synth_clipset.part(ids) for ids in (fold.train, fold.valid, fold.test))
