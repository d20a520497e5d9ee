"""Every registered metric, on inputs of the kind it declares: values within its bounds,
its direction respected (a perfect system beats a random one), its declared chance level
met by random scores, and its value unchanged when the classes (tags, targets) are listed
in another order. A new metric is covered here with no new test code."""

from __future__ import annotations

import numpy as np
import pytest

from musicbench.protocol.metrics import AGGREGATIONS, METRICS, Scored
from musicbench.tasks.keys import KEYS

N = 3000  # clips: random scores' metrics fall within a few hundredths of their expectation
KIND_OF = {name: METRICS[name].kinds[0] for name in METRICS}


def classes_for(name: str) -> list[str]:
    m = METRICS[name]
    size = 20 if KIND_OF[name] == "multilabel" else 6  # more tags than recall@k's largest k
    candidates = [[f"class {i}" for i in range(size)], list(KEYS)]
    return next(c for c in candidates if m.applies_to(c))


def case(name: str, seed: int = 0) -> dict[str, Scored]:
    """The metric's kind: a perfect system, a random one and a no-skill one on one fold part."""
    kind, classes, rng = KIND_OF[name], classes_for(name), np.random.default_rng(seed)
    n = len(classes)
    if kind in ("multiclass", "clustering"):
        y = rng.integers(0, n, N)
        perfect = np.eye(n)[y]
        random = np.eye(n)[rng.integers(0, n, N)] if kind == "clustering" else rng.random((N, n))
        return {"perfect": Scored(kind, y, perfect, classes), "random": Scored(kind, y, random, classes),
                "chance": Scored(kind, y, random, classes)}
    if kind == "multilabel":
        y = (rng.random((N, n)) < 0.3).astype(int)
        mask = (rng.random((N, n)) < 0.9).astype(int)
        perfect = y + 0.1 * rng.random((N, n))
        random = rng.random((N, n))
        return {"perfect": Scored(kind, y, perfect, classes, mask),
                "random": Scored(kind, y, random, classes, mask),
                "chance": Scored(kind, y, random, classes)}  # chance counts every tag observed
    classes = ["arousal", "valence", "tempo"]
    y = rng.normal(0, 1, (N, 3)) * [1, 2, 30] + [0, 0, 120]
    noisy = y + rng.normal(0, 1, (N, 3)) * [2, 4, 60]
    mean = y.mean(axis=0) + 1e-6 * rng.normal(0, 1, (N, 3))  # no skill: the part's mean
    return {"perfect": Scored(kind, y, y.copy(), classes), "random": Scored(kind, y, noisy, classes),
            "chance": Scored(kind, y, mean, classes)}


def permuted(s: Scored, seed: int = 1) -> Scored:
    """The same fold part with the classes listed in another order."""
    order = np.random.default_rng(seed).permutation(len(s.classes))
    classes = [s.classes[i] for i in order]
    if s.kind in ("multiclass", "clustering"):
        relabel = np.argsort(order)  # old index -> new index
        return Scored(s.kind, relabel[s.y], s.scores[:, order], classes)
    return Scored(s.kind, s.y[:, order], s.scores[:, order], classes,
                  None if s.mask is None else s.mask[:, order])


@pytest.fixture(params=sorted(METRICS), scope="module")
def metric(request):
    return request.param


def test_declaration_is_complete(metric):
    m = METRICS[metric]
    assert m.aggregation in AGGREGATIONS and m.kinds and m.description
    assert m.bounds is None or m.bounds[0] < m.bounds[1]


def test_values_are_within_bounds(metric):
    m = METRICS[metric]
    for label, scored in case(metric).items():
        value = m.fn(scored)
        assert np.isfinite(value), (label, value)
        if m.bounds is not None:
            assert m.bounds[0] - 1e-9 <= value <= m.bounds[1] + 1e-9, (label, value)


def test_a_perfect_system_scores_better_than_a_random_one(metric):
    m = METRICS[metric]
    scored = case(metric)
    perfect, random = m.fn(scored["perfect"]), m.fn(scored["random"])
    assert not m.better(random, perfect), (perfect, random)
    if m.leaderboard:  # counts (tags dropped) need not differ
        assert m.better(perfect, random), (perfect, random)


@pytest.mark.parametrize("metric", sorted(n for n in METRICS if METRICS[n].chance is not None))
def test_random_scores_meet_the_declared_chance_level(metric):
    m = METRICS[metric]
    scored = case(metric)["chance"]
    expected = m.chance(len(scored.classes))
    assert m.fn(scored) == pytest.approx(expected, abs=0.03), f"{metric}: declared chance {expected}"


def test_invariant_to_the_order_of_classes(metric):
    m = METRICS[metric]
    for label, scored in case(metric).items():
        assert m.fn(permuted(scored)) == pytest.approx(m.fn(scored), rel=1e-9, abs=1e-12), label


def test_every_kind_has_one_primary_metric():
    kinds = {k for m in METRICS.values() for k in m.kinds}
    for kind in kinds:
        assert sum(1 for m in METRICS.values() if m.primary and kind in m.kinds) == 1, kind
