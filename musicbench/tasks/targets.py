"""Regression targets: continuous values per clip (arousal and valence, tempo in BPM),
read from a track attribute or a manifest column named as in the spec's ``targets``,
and checked against the spec's declared ``ranges`` before any work starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from musicbench.errors import DataError, UnknownNameError
from musicbench.tasks.loader import UnusableLabel

if TYPE_CHECKING:
    from musicbench.tasks.loader import Task


def target_value(value: Any, name: str, bounds: tuple[float, float]) -> float:
    """A target as a float; ``ValueError`` saying what is wrong and what is valid."""
    low, high = bounds
    valid = f"a number from {low:g} to {high:g}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is missing; expected {valid}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {value!r} is not a number; expected {valid}") from None
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"{name} = {number:g} is outside its declared range; expected {valid}")
    return number


def read_targets(task: Task, track: Any) -> tuple[float, ...]:
    """A track's targets in the order of ``targets``. A track without an annotation for
    one is unusable (left out with ``on_bad_track = "skip"``); a value that is no number,
    or is out of its range, is refused naming the track and its annotation file."""
    spec = task.spec
    values = []
    for name in spec.targets:
        try:
            value = getattr(track, name)
        except AttributeError:
            valid = [a for a in dir(track) if not a.startswith("_") and not a.endswith("_path")]
            raise UnknownNameError(f"attribute of {task.name} tracks", name, valid) from None
        except FileNotFoundError:
            value = None
        except (TypeError, ValueError) as exc:  # the loader's parser failed on the file
            value = _one_number(getattr(track, f"{name}_path", None), exc)
        if value is None:
            raise UnusableLabel(track.track_id, f"no {name} annotation")
        try:
            values.append(target_value(value, name, spec.ranges[name]))
        except ValueError as exc:
            where = getattr(track, f"{name}_path", None) or spec.path
            raise DataError(f"task {task.ref}: track {track.track_id!r} ({where}): {exc}") from None
    return tuple(values)


def _one_number(path: str | None, exc: Exception) -> float | None:
    """The value of a one-number annotation file (a ``.bpm`` file) that a loader could not
    parse (mirdata's GTZAN tempo reader under numpy 2); the loader's error where the file
    holds anything else."""
    import os

    import numpy as np

    if not path:
        raise exc
    if not os.path.exists(path):
        return None
    values = np.loadtxt(path, ndmin=1).ravel()
    if values.size != 1:
        raise exc
    return float(values[0])
