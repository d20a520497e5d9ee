"""Few-shot folds: each fold of a protocol, trained on ``shots`` clips per class only.

``PROTOCOL:shots=K[:draws=D]`` keeps each base fold's test part and replaces its training
part by K clips of every class drawn from that fold's training part, ``D`` times
(``DRAWS`` by default); there is no validation part, so the few clips are all a system
learns from. Draw ``d`` of base fold ``f`` is fold ``f * D + d``. Each class's clips are
permuted by a generator seeded with (protocol seed, base fold, draw) and the first K kept,
so draws are deterministic, differ from one another, and are nested across K: the
1-shot clips of a draw are among its 5-shot clips, and a curve over K compares like with
like. The drawn ids are part of the split's hash, so every cell stays content-addressed.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from musicbench.errors import ConfigError
from musicbench.tasks.loader import ClipSet

DRAWS = 5  # draws per base fold when the protocol does not say
_SUFFIX = re.compile(r"^(.*?):shots=([^:]*)(?::draws=([^:]*))?$")


def _count(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"protocol {spec!r}: {what}={text!r} must be an integer >= 1")
    return int(text)


def split_suffix(spec: str) -> tuple[str, int | None, int]:
    """``(base protocol, shots, draws)`` of ``PROTOCOL:shots=K[:draws=D]``; shots is None
    for a protocol without the suffix."""
    m = _SUFFIX.match(spec)
    if not m:
        return spec, None, DRAWS
    base, shots, draws = m.groups()
    return base, _count(shots, "shots", spec), DRAWS if draws is None else _count(draws, "draws", spec)


def suffix(shots: int | None, draws: int) -> str:
    """The protocol suffix ``split_suffix`` reads (the default draws left out)."""
    if shots is None:
        return ""
    return f":shots={shots}" + (f":draws={draws}" if draws != DRAWS else "")


def _by_class(clipset: ClipSet, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for t in sorted(ids):
        out[clipset.by_id[t].label].append(t)
    return out


def check_shots(clipset: ClipSet, folds: Sequence[Any], shots: int, protocol: str) -> None:
    """Refuse, naming classes and counts, a ``shots`` that some fold's training part cannot
    give for some class of the clips present (or a multilabel task: a clip is not one class)."""
    spec = clipset.task.spec
    if spec.kind != "multiclass":
        raise ConfigError(f"protocol {protocol} on {clipset.task.ref}: shots= draws clips per class of a "
                          f"multiclass task; this task is {spec.kind}")
    present = sorted({c.label for c in clipset.clips})
    short, fewest = [], shots
    for f in folds:
        counts = Counter(clipset.by_id[t].label for t in f.train)
        fewest = min(fewest, *(counts[c] for c in present))
        lacking = [f"{c} ({counts[c]})" for c in present if counts[c] < shots]
        if lacking:
            short.append(f"fold {f.index}: {', '.join(lacking)}")
    if short:
        raise ConfigError(
            f"protocol {protocol} on {clipset.task.ref}: shots={shots} exceeds the training clips of "
            f"some class, class (clips in the training part): {'; '.join(short)}. Use shots <= "
            f"{fewest}, or a protocol whose training parts hold more clips of every class")


def draw_shots(clipset: ClipSet, train: Sequence[str], shots: int, seed: int, fold: int,
               draw: int) -> list[str]:
    """``shots`` track ids of every class of ``train``, for draw ``draw`` of base fold ``fold``."""
    rng = np.random.default_rng([seed, fold, draw])
    picked = []
    for _, ids in sorted(_by_class(clipset, train).items()):
        picked += [ids[i] for i in rng.permutation(len(ids))[:shots]]
    return picked


def few_shot_parts(clipset: ClipSet, folds: Sequence[Any], shots: int, draws: int, seed: int,
                   protocol: str) -> list[tuple[int, list[str], tuple[str, ...]]]:
    """(fold index, drawn training ids, test ids) of every draw of every base fold, after
    ``check_shots``."""
    check_shots(clipset, folds, shots, protocol)
    return [(f.index * draws + d, draw_shots(clipset, f.train, shots, seed, f.index, d), f.test)
            for f in folds for d in range(draws)]
