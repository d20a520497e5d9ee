"""What a task hands the protocol and systems: its usable clips (``Clip``, ``ClipSet``)
and their targets encoded for the task's kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from musicbench.tasks.parts import ClipData, Vocabulary

if TYPE_CHECKING:
    from musicbench.tasks.loader import Task


@dataclass(frozen=True)
class Clip:
    """One track as a system sees it. ``label`` is a class name, a tuple of tags, or (a
    regression task) a tuple of target values in the order of the spec's ``targets``."""

    track_id: str
    path: str
    label: str | tuple[str, ...] | tuple[float, ...]
    group: str | None = None
    split: str | None = None
    observed: tuple[str, ...] | None = None  # tags annotated either way (None: every tag)


@dataclass
class ClipSet:
    """The clips of a task that are usable on this machine, and what was left out."""

    task: Task
    clips: list[Clip]
    classes: list[str]
    n_index: int
    missing: list[str]
    bad: dict[str, str] = field(default_factory=dict)  # track id -> what is wrong with its file

    def __len__(self) -> int:
        return len(self.clips)

    @cached_property
    def by_id(self) -> dict[str, Clip]:
        return {c.track_id: c for c in self.clips}

    def subset(self, track_ids: list[str] | tuple[str, ...]) -> list[Clip]:
        return [self.by_id[t] for t in track_ids]

    def targets(self, clips: list[Clip]) -> np.ndarray:
        """Class indices (multiclass), a 0/1 indicator matrix (multilabel) or target values
        (regression, one column per target)."""
        return encode_labels(clips, self.classes, self.task.spec.kind)

    def part(self, ids: list[str] | tuple[str, ...], augment: str | None = None,
             deform: str | None = None, vocabulary: Vocabulary | None = None) -> ClipData:
        """The clips of ``ids`` (a fold's train, valid or test part) with their targets, over
        the fold's ``vocabulary`` where it has one."""
        clips = self.subset(ids)
        classes = list(vocabulary.tags) if vocabulary else self.classes
        mask = None
        if any(c.observed is not None for c in clips):
            mask = np.array([[c.observed is None or t in c.observed for t in classes] for c in clips],
                            dtype=np.int64)
        return ClipData(self.task, clips, classes, self.task.spec.kind,
                        encode_labels(clips, classes, self.task.spec.kind), augment, deform, mask, vocabulary)

    def attribute(self, field: str) -> dict[str, str | None]:
        """Track id -> value of any track attribute (for group protocols)."""
        if field == self.task.spec.group:
            return {c.track_id: c.group for c in self.clips}
        return {c.track_id: self.task.track_attribute(c.track_id, field) for c in self.clips}


def encode_labels(clips: list[Clip], classes: list[str], kind: str) -> np.ndarray:
    if kind == "regression":
        return np.array([c.label for c in clips], dtype=np.float64).reshape(len(clips), len(classes))
    index = {c: i for i, c in enumerate(classes)}
    if kind == "multiclass":
        return np.array([index[c.label] for c in clips], dtype=np.int64)
    y = np.zeros((len(clips), len(classes)), dtype=np.int64)
    for row, clip in enumerate(clips):
        for tag in clip.label:
            if tag in index:  # tags outside a fold's vocabulary are left out
                y[row, index[tag]] = 1
    return y
