"""Contract: every registered task loads against mirdata's sample data (or generates itself).

Adding a task spec to ``datasets/`` is enough to be covered here.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicbench.tasks import get_spec, get_task, task_names
from musicbench.tasks.spec import KINDS

from helpers import SHARED, needs_shared

MIRDATA_TASKS = [n for n in task_names() if get_spec(n).source == "mirdata"]


def sample_task(name: str):
    return get_task(f"{name}:sample", str(SHARED / "mirdata_sample" / "resources"),
                    str(SHARED / "mirdata_sample" / "indexes"))


def check_clipset(clipset) -> None:
    spec = clipset.task.spec
    assert spec.kind in KINDS
    assert len(clipset) >= 1
    for clip in clipset.clips:
        if spec.kind == "multiclass":
            assert isinstance(clip.label, str) and clip.label in clipset.classes
        elif spec.kind == "regression":  # one value per target, within its declared range
            assert clipset.classes == list(spec.targets) and len(clip.label) == len(spec.targets)
            for target, value in zip(spec.targets, clip.label, strict=True):
                low, high = spec.ranges[target]
                assert isinstance(value, float) and low <= value <= high
        else:
            assert isinstance(clip.label, tuple)
            assert set(clip.label) <= set(clipset.classes)
        if spec.group:
            assert clip.group, f"{clip.track_id} has no {spec.group}"
        if spec.classes is not None:
            assert clipset.classes == list(spec.classes)
    clip = clipset.clips[0]
    audio = clipset.task.load_audio(clip)
    policy = spec.clip
    assert audio.dtype == np.float32 and audio.ndim == 1  # mono at the policy's rate
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    seconds = audio.shape[0] / policy.sample_rate
    if policy.max_duration:
        assert seconds <= policy.max_duration + 1e-6
    assert seconds >= policy.min_duration


@needs_shared
@pytest.mark.parametrize("name", MIRDATA_TASKS)
def test_task_loads_mirdata_sample(name):
    clipset = sample_task(name).clips(allow_partial=True)
    check_clipset(clipset)
    assert clipset.n_index == len(clipset) + len(clipset.missing)


@needs_shared
@pytest.mark.parametrize("name", [n for n in MIRDATA_TASKS if get_spec(n).official])
def test_official_split_attribute_readable(name):
    task = sample_task(name)
    clipset = task.clips(allow_partial=True)
    off = task.spec.official
    if off.attribute:
        values = {c.split for c in clipset.clips}
        assert None not in values
        if off.folds is None:  # named parts must name values the data really uses
            assert values & set(off.train + off.valid + off.test), values


SYNTHETIC_TASKS = [n for n in task_names() if get_spec(n).source == "synthetic"]


def small_synthetic(name: str, data_home: str | None = None):
    """A synthetic task at its ``mini`` version (the small one the suites use)."""
    versions = get_spec(name).synth["versions"]
    return get_task(f"{name}:{'mini' if 'mini' in versions else get_spec(name).version}", data_home)


@pytest.mark.parametrize("name", SYNTHETIC_TASKS)
def test_synthetic_task_contract(name):
    clipset = small_synthetic(name).clips()
    check_clipset(clipset)
    assert clipset.missing == []
    if clipset.task.spec.kind == "regression":  # targets spread, not a few constants
        y = clipset.targets(clipset.clips)
        assert (np.unique(y, axis=0).shape[0] > len(clipset) // 2) and (y.std(axis=0) > 0).all()
    else:
        assert len(clipset.classes) >= 5
    if clipset.task.spec.kind == "multilabel":  # every tag occurs, no clip carries them all
        y = clipset.targets(clipset.clips)
        assert y.sum(axis=0).min() > 0 and y.sum(axis=1).max() < len(clipset.classes)


@pytest.mark.parametrize("name", SYNTHETIC_TASKS)
def test_synthetic_data_is_deterministic(tmp_path, name):
    """Generated twice in two places, the files are byte-identical (same md5 in the index)."""
    (tmp_path / get_spec(name).dataset).mkdir()  # asked for: a folder made for it in the data home
    here, other = small_synthetic(name), small_synthetic(name, str(tmp_path))
    assert here.dataset._index["tracks"] == other.dataset._index["tracks"]
    assert [c.label for c in here.clips().clips] == [c.label for c in other.clips().clips]
    assert other.data_home.startswith(str(tmp_path))


def test_unknown_task_lists_valid_names():
    from musicbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="mridangam_stroke"):
        get_task("no_such_task")


def test_unknown_version_lists_valid_versions():
    from musicbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"valid versions of mridangam_stroke: .*1\.5") as exc:
        get_task("mridangam_stroke:9.9").track_ids()
    assert "9.9" in str(exc.value)


def test_missing_index_says_how_to_get_it(tmp_path):
    from musicbench.errors import DataError

    task = get_task("gtzan_genre", data_home=str(tmp_path), index_dir=str(tmp_path))
    with pytest.raises(DataError, match="data fetch gtzan_genre:1.0.*--index-dir"):
        task.track_ids()


@needs_shared
def test_partial_data_refused_unless_allowed():
    from musicbench.errors import DataError

    task = get_task("mridangam_stroke", str(SHARED / "data"), str(SHARED / "indexes"))
    with pytest.raises(DataError, match="--allow-partial"):
        task.clips()
    clipset = task.clips(allow_partial=True)
    assert clipset.n_index == 6976
    assert len(clipset) == 2879 and len(clipset.missing) == 6976 - 2879
