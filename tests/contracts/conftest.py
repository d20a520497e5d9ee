"""The fold the system contracts fit on (``test_systems.py``, ``test_system_kinds.py``)."""

from __future__ import annotations

import pytest

from musicbench.tasks import ClipData


@pytest.fixture(scope="module")
def contract_fold(synth_fold):
    """Two clips per class of each part of the synthetic fold: the contract checks what
    every system must do, not how well it learns (``test_classical_systems_learn...``
    does), so the reference-size networks are fitted on as little as it takes."""
    def few(part: ClipData, per_class: int = 2) -> ClipData:
        keep, seen = [], {}
        for i, clip in enumerate(part.clips):
            if seen.get(clip.label, 0) < per_class:
                seen[clip.label] = seen.get(clip.label, 0) + 1
                keep.append(i)
        return ClipData(part.task, [part.clips[i] for i in keep], part.classes, part.kind, part.y[keep])

    return tuple(few(part) for part in synth_fold)
