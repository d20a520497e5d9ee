"""A fold part as systems receive it: clips, their targets and how their audio is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from musicbench.tasks.loader import Clip, Task


@dataclass(frozen=True)
class Vocabulary:
    """The tags a multilabel fold is trained and scored on, chosen on its training part
    (``top_k_tags``, ``min_tag_count`` of the task spec), and the tags left out, by reason."""

    tags: tuple[str, ...]
    dropped: dict[str, tuple[str, ...]]  # reason -> tags

    def summary(self) -> dict[str, object]:
        return {"kept": len(self.tags), "dropped": {k: list(v) for k, v in self.dropped.items() if v}}


@dataclass
class ClipData:
    """Clips of one fold part with their targets, and the task that reads their audio.

    ``y`` is class indices (multiclass) or a 0/1 matrix (multilabel); None at predict time.
    ``augment`` is a train-time augmentation spec that systems apply while fitting;
    ``deform`` a test-time deformation applied to every clip's audio as it is read
    (both in the grammar of ``musicbench.augment``; None for neither). ``mask`` (multilabel,
    where the dataset marks tags unobserved, as OpenMIC-2018) is 1 where a clip's tag was
    annotated: unobserved tags are neither positives nor negatives. ``vocabulary`` is the
    fold's chosen tag vocabulary, where the task selects one.
    """

    task: Task
    clips: list[Clip]
    classes: list[str]
    kind: str
    y: np.ndarray | None = None
    augment: str | None = None
    deform: str | None = None
    mask: np.ndarray | None = None
    vocabulary: Vocabulary | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def audio(self, i: int) -> np.ndarray:
        """Clip i's audio under the task's clip policy, deformed if ``deform`` is set."""
        clip = self.clips[i]
        audio = self.task.load_audio(clip)
        if self.deform:
            from musicbench.augment import apply, seed_for

            audio = apply(self.deform, audio, self.sample_rate, seed_for(clip.track_id, self.deform))
        return audio

    @property
    def sample_rate(self) -> int:
        return self.task.spec.clip.sample_rate

    def without_labels(self) -> ClipData:
        """The same clips as a system sees them at predict time: no targets, no augmentation."""
        return ClipData(self.task, self.clips, self.classes, self.kind, None, None, self.deform,
                        vocabulary=self.vocabulary)
