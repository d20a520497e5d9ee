"""Parameter groups: composing, changing defaults, and the constructor made from them."""

from __future__ import annotations

import inspect

import pytest
from sklearn.base import clone

from musicbench.errors import ConfigError
from musicbench.systems.base import RUN, System
from musicbench.systems.params import COUNT, POSITIVE, OneOf, Param, Params

A = Params(n=Param(3, COUNT), kind=Param("x", OneOf("x", "y")))
B = Params(kind=Param("y", OneOf("y")), rate=Param(0.5, POSITIVE, added=True))


def test_a_later_group_replaces_an_entry_in_place_and_adds_the_rest():
    both = A | B
    assert list(both) == ["n", "kind", "rate"]
    assert both["kind"] == B["kind"] and both["n"] == A["n"]


def test_but_changes_a_default_keeping_the_rule_or_replaces_the_entry():
    changed = A.but(n=5, kind=Param("y", OneOf("y")))
    assert changed["n"] == Param(5, COUNT) and str(changed["kind"].rule) == "'y'"
    assert A["n"].default == 3  # the group itself is unchanged
    with pytest.raises(KeyError, match="no parameter m in n, kind"):
        A.but(m=1)
    assert list(A.only("kind")) == ["kind"]


class Toy(System):
    params = A | B | RUN


def test_the_constructor_takes_the_parameters_with_their_defaults():
    assert list(inspect.signature(Toy.__init__).parameters) == ["self", "n", "kind", "rate", "seed", "device"]
    toy = Toy(n=0)
    assert (toy.n, toy.kind, toy.rate, toy.seed) == (0, "y", 0.5, 0)
    assert clone(toy).get_params() == toy.get_params()
    with pytest.raises(ConfigError, match="n=0 must be an integer >= 1"):
        toy.validate_params()


def test_an_added_parameter_at_its_default_stays_out_of_the_key():
    assert Toy().key_params() == {"n": 3, "kind": "y"}
    assert Toy(rate=1.0).key_params() == {"n": 3, "kind": "y", "rate": 1.0}
