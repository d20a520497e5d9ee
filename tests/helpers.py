"""What tests share besides fixtures: the checkout, the real data in ../shared, and the
synthetic clips recast as other task kinds.

``MUSICBENCH_SHARED`` points at the shared data folder (default: ``../shared`` beside the
checkout). Tests that need it skip with a visible reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from musicbench.tasks import ClipData

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def shared_dir() -> Path | None:
    path = Path(os.environ.get("MUSICBENCH_SHARED") or REPO.parent / "shared")
    return path if (path / "mirdata_sample").is_dir() else None


SHARED = shared_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="../shared (mirdata sample and real data) is absent; set MUSICBENCH_SHARED to run",
)


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


# systems as the contract suites build them: shortened, on a task kind they handle

QUICK = {"max_epochs": 1, "chunks_per_clip": 1}  # applied where a family has the parameter


def quick(name: str) -> dict:
    from musicbench.systems import family_class, get_preset, valid_params

    valid = valid_params(family_class(get_preset(name)["family"]))
    return {k: v for k, v in QUICK.items() if k in valid}


def build(name: str, seed: int = 0):
    from musicbench.systems import build_system

    return build_system(name, seed=seed, **quick(name))


def parts_for(name: str, contract_fold) -> tuple[ClipData, ...]:
    """The contract fold as a task kind the system handles (multiclass where it can)."""
    return as_kind(fitted_kind(build(name)), contract_fold)


def as_kind(kind: str, contract_fold) -> tuple[ClipData, ...]:
    convert = {"multiclass": lambda d: d, "multilabel": multilabel, "regression": regression}[kind]
    return tuple(convert(part) for part in contract_fold)


def fitted_kind(system) -> str:
    return next(k for k in ("multiclass", "multilabel", "regression") if k in system.kinds)
