"""Shared fixtures: an isolated workspace per test session, and the real data in ../shared.

``MUSICBENCH_SHARED`` points at the shared data folder (default: ``../shared`` beside the
checkout). Tests that need it skip with a visible reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    path = Path(os.environ.get("MUSICBENCH_SHARED") or REPO.parent / "shared")
    return path if (path / "mirdata_sample").is_dir() else None


SHARED = shared_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="../shared (mirdata sample and real data) is absent; set MUSICBENCH_SHARED to run",
)


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


def multilabel(data):
    """The synthetic clips as a multilabel task: genre tags plus a 'danceable' tag."""
    from musicbench.tasks import ClipData

    dance = {"electro", "latin", "reggae"}
    classes = data.classes + ["danceable"]
    y = np.zeros((len(data), len(classes)), dtype=np.int64)
    for i, clip in enumerate(data.clips):
        y[i, data.classes.index(clip.label)] = 1
        y[i, -1] = clip.label in dance
    return ClipData(data.task, data.clips, classes, "multilabel", y)


def regression(data):
    """The synthetic clips as a regression task: their tempo (BPM), as ``synth_tempo`` has it."""
    from musicbench.tasks import ClipData

    tempo = np.array([[data.task.dataset.track(c.track_id).tempo] for c in data.clips])
    return ClipData(data.task, data.clips, ["tempo"], "regression", tempo)


def with_unobserved(data, flip: bool = False):
    """A multilabel part with unobserved pairs, as OpenMIC-2018 marks them: the first tag
    on its positives (it is observed on negatives only), the last tag on every other clip.
    ``flip`` inverts the labels of the unobserved pairs, which no fit may notice."""
    from musicbench.tasks import ClipData

    mask = np.ones_like(data.y)
    mask[data.y[:, 0] == 1, 0] = 0
    mask[::2, -1] = 0
    y = np.where(mask == 1, data.y, 1 - data.y) if flip else data.y
    return ClipData(data.task, data.clips, data.classes, data.kind, y, data.augment, data.deform, mask)
