"""Contract, per registered system preset: every task kind is either handled or refused
before any state is fitted, and multilabel fits leave unobserved pairs out.

A module of its own beside ``test_systems.py`` (whose helpers and fold it shares)
because it fits each system up to three more times: under pytest-xdist's ``loadfile`` the
two run on different workers (the README's test command).
"""

from __future__ import annotations

import numpy as np
import pytest

from musicbench.errors import ConfigError
from musicbench.systems import system_names

from helpers import as_kind, build, fitted_kind, with_unobserved


@pytest.mark.parametrize("name", system_names())
def test_every_kind_supported_or_refused_clearly(name, contract_fold):
    """A kind a system does not handle is refused before any state is fitted. Multilabel
    fits leave unobserved (clip, tag) pairs out: whatever their labels, the scores are the
    same (the first tag is observed on negatives only)."""
    system = build(name)
    for kind in ("multilabel", "multiclass", "regression"):
        train, valid, test = as_kind(kind, contract_fold)
        fresh = build(name)
        if kind not in system.kinds:
            with pytest.raises(ConfigError, match=f"handles {' and '.join(system.kinds)} tasks, not {kind}"):
                fresh.fit(train, valid)
            assert not [k for k in vars(fresh) if k.endswith("_")], "fitted state before the refusal"
        elif kind == "multilabel":
            masked = [with_unobserved(d) for d in (train, valid)]
            scores = fresh.fit(*masked).predict_scores(test.without_labels())
            assert scores.shape == (len(test), len(train.classes)) and np.isfinite(scores).all()
            flipped = [with_unobserved(d, flip=True) for d in (train, valid)]
            again = build(name).fit(*flipped).predict_scores(test.without_labels())
            np.testing.assert_allclose(again, scores, rtol=1e-6, atol=1e-7)
        elif kind != fitted_kind(system):  # the contract suite fits and checks that one
            scores = fresh.fit(train, valid).predict_scores(test.without_labels())
            assert scores.shape == (len(test), len(train.classes)) and np.isfinite(scores).all()
