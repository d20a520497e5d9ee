"""System parameters declared once: each with its default and the rule its values pass.

Parameters come in groups (``Params``: the front end, the summary, the classifier, chunked
training, ...) that families compose (``FRONT_END | SUMMARY | ...``), changing a default
where theirs differs (``.but(summary="mean")``). A family's ``params`` gives its
constructor (``init_from``: scikit-learn's explicit signature, arguments stored untouched)
and its rules, which ``System.validate_params`` checks rather than ``__init__``, as
scikit-learn estimators do: ``clone``/``set_params`` never raise and a bad preset is
refused with a message that names the parameter and its valid range.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from numbers import Integral, Real
from typing import Any


class Rule:
    """What values of one parameter are valid; ``str(rule)`` says so in words."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Rule):
    """A real number (an integer when ``integer``) within optional bounds."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False  # the bound itself is excluded
    high_open: bool = False

    def accepts(self, value: Any) -> bool:
        kind = Integral if self.integer else Real
        if isinstance(value, bool) or not isinstance(value, kind) or math.isnan(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def __str__(self) -> str:
        noun = "an integer" if self.integer else "a number"
        low, high = (b if isinstance(b, int | None) else f"{b:g}" for b in (self.low, self.high))
        if self.low is not None and self.high is not None:
            return (f"{noun} in {'(' if self.low_open else '['}{low}, "
                    f"{high}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {high}"
        return noun


@dataclass(frozen=True)
class PowerOfTwo(Rule):
    low: int

    def accepts(self, value: Any) -> bool:
        return Number(self.low, integer=True).accepts(value) and value & (value - 1) == 0

    def __str__(self) -> str:
        return f"a power of 2 >= {self.low}"


class OneOf(Rule):
    def __init__(self, *options: Any):
        self.options = options

    def accepts(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) for o in self.options)

    def __str__(self) -> str:
        names = ", ".join(map(repr, self.options))
        return names if len(self.options) == 1 else f"one of {names}"


class Registered(Rule):
    """A name of a registry, looked up when checked, so entries registered later count."""

    def __init__(self, registry: Any):
        self.registry = registry

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.registry

    def __str__(self) -> str:
        return f"one of {', '.join(map(repr, self.registry.names()))}"


class Either(Rule):
    """Valid under any of several rules (e.g. ``'scale'``, ``'auto'`` or a number > 0)."""

    def __init__(self, *rules: Rule):
        self.rules = rules

    def accepts(self, value: Any) -> bool:
        return any(r.accepts(value) for r in self.rules)

    def __str__(self) -> str:
        return " or ".join(map(str, self.rules))


@dataclass(frozen=True)
class Names(Rule):
    """One name, or a non-empty list of names, from a registry."""

    valid: tuple[str, ...]
    empty: bool = False  # an empty list is valid too

    def accepts(self, value: Any) -> bool:
        names = [value] if isinstance(value, str) else value
        return (isinstance(names, (list, tuple)) and (self.empty or len(names) > 0)
                and all(isinstance(n, str) and n in self.valid for n in names))

    def __str__(self) -> str:
        some = "a (possibly empty)" if self.empty else "a"
        return f"a name or {some} list of names from {', '.join(self.valid)}"


@dataclass(frozen=True)
class ListOf(Rule):
    """A non-empty list of values each valid under ``item`` (a grid to choose from)."""

    item: Rule

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) > 0
                and all(self.item.accepts(v) for v in value))

    def __str__(self) -> str:
        return f"a non-empty list, each {self.item}"


@dataclass(frozen=True)
class Matches(Rule):
    """A string matching a regular expression, described for people by ``words``."""

    pattern: str
    words: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None

    def __str__(self) -> str:
        return self.words


SEED = Number(0, 2**32 - 1, integer=True)  # numpy and scikit-learn seeds
DEVICE = Matches(r"cpu|mps|cuda(:\d+)?", "cpu, cuda, cuda:N or mps")
COUNT = Number(1, integer=True)
POSITIVE = Number(0, low_open=True)
NON_NEGATIVE = Number(0)
FRACTION = Number(0, 1)
N_FFT = PowerOfTwo(64)


@dataclass(frozen=True)
class Param:
    """One constructor parameter. ``added``: it came after cell keys were first made, so at
    its default it stays out of a cell's key and earlier results keep matching."""

    default: Any
    rule: Rule
    added: bool = False


class Params(Mapping[str, Param]):
    """An ordered group of parameters by name."""

    def __init__(self, entries: Mapping[str, Param] | None = None, /, **params: Param):
        self._entries = {**(entries or {}), **params}

    def __getitem__(self, name: str) -> Param:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __or__(self, other: Params) -> Params:
        """Both groups; ``other``'s entries replace this one's of the same name."""
        return Params({**self._entries, **other._entries})

    def but(self, **changes: Any) -> Params:
        """This group with other defaults (a bare value keeps the rule) or other entries."""
        unknown = changes.keys() - self._entries.keys()
        if unknown:
            raise KeyError(f"no parameter {', '.join(sorted(unknown))} in {', '.join(self)}")
        changed = {name: value if isinstance(value, Param) else replace(self._entries[name], default=value)
                   for name, value in changes.items()}
        return Params({**self._entries, **changed})

    def only(self, *names: str) -> Params:
        return Params({name: self._entries[name] for name in names})

    def rules(self) -> dict[str, Rule]:
        return {name: p.rule for name, p in self._entries.items()}


def init_from(params: Params) -> Callable[..., None]:
    """An ``__init__`` taking ``params`` as keywords with their defaults and storing each
    untouched; its explicit signature is what ``get_params`` and ``clone`` read."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(kwargs.keys() - params.keys())
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected parameter(s) {', '.join(unknown)}; "
                            f"valid: {', '.join(params)}")
        for name, p in params.items():
            setattr(self, name, kwargs.get(name, p.default))

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=p.default)
           for name, p in params.items()])
    return __init__
