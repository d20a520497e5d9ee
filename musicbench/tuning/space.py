"""A preset's ``[search_space]``: parsed, validated, and sampled by an Optuna trial.

Each entry names a constructor parameter of the preset's family::

    C      = { type = "float", low = 0.01, high = 1000.0, log = true }
    n_mfcc = { type = "int", low = 13, high = 40, step = 1 }
    kernel = { type = "categorical", choices = ["rbf", "linear"] }
    gamma  = { type = "float", low = 1e-4, high = 1.0, log = true, when = { kernel = "rbf" } }

``when`` makes a parameter conditional: it is sampled only when every named parameter
has the given value (or one of a list of values); otherwise the preset's value stands.
A condition may name a searched parameter or a fixed one (the preset's ``[params]`` or
the family's default). Mistakes are reported with the preset file and the parameter.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from typing import Any

from musicbench.errors import ConfigError

TYPES = ("float", "int", "categorical")
KEYS = {
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}
UNTUNABLE = ("seed", "device")
Value = bool | int | float | str


@dataclass(frozen=True)
class Dimension:
    """One searched parameter; ``when`` is ((other parameter, allowed values), ...)."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Value, ...] = ()
    when: tuple[tuple[str, tuple[Value, ...]], ...] = ()

    def suggest(self, trial: Any) -> Value:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log)
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when}
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters of one system, in an order where conditions come first.

    ``fixed`` holds every other parameter's value (preset, then family default), which
    conditions on non-searched parameters are checked against.
    """

    system: str
    dims: tuple[Dimension, ...]
    fixed: dict[str, Any]

    def sample(self, trial: Any) -> dict[str, Value]:
        """Parameters for one trial; inactive conditional ones are left out."""
        chosen: dict[str, Value] = {}
        skipped: set[str] = set()
        for dim in self.dims:
            active = all(
                other not in skipped and chosen.get(other, self.fixed.get(other)) in allowed
                for other, allowed in dim.when
            )
            if active:
                chosen[dim.name] = dim.suggest(trial)
            else:
                skipped.add(dim.name)
        return chosen

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {d.name: d.as_dict() for d in self.dims}


def _number(value: Any, kind: str, where: str, key: str) -> float | int:
    ok = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        expected = "an integer" if kind == "int" else "a finite number"
        raise ConfigError(f"{where}: {key} = {value!r} must be {expected}")
    return value


def _dimension(name: str, spec: Any, where: str) -> Dimension:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table like {{ type = \"float\", low = .., high = .. }}, "
                          f"got {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}: type = {kind!r} must be one of {', '.join(TYPES)}")
    unknown = set(spec) - KEYS[kind]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} for type {kind}; "
                          f"valid: {sorted(KEYS[kind])}")
    when = _when(spec.get("when", {}), where)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        if any(not isinstance(c, Value) for c in choices):
            raise ConfigError(f"{where}: choices must be strings, numbers or booleans, got {choices!r}")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(f"{where}: choices {choices!r} repeat a value")
        return Dimension(name, kind, choices=tuple(choices), when=when)
    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{where}: missing {key}")
    low, high = (_number(spec[k], kind, where, k) for k in ("low", "high"))
    if low == high:
        raise ConfigError(f"{where}: empty range (low = high = {low}); use a fixed value in [params]")
    if low > high:
        raise ConfigError(f"{where}: inverted range (low = {low} > high = {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log = {log!r} must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got low = {low}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, kind, where, "step")
        if step <= 0:
            raise ConfigError(f"{where}: step = {step} must be > 0")
        if log:
            raise ConfigError(f"{where}: step cannot be combined with a log scale")
        if step > high - low:
            raise ConfigError(f"{where}: step = {step} is wider than the range {low}..{high}")
    return Dimension(name, kind, low, high, log, step, when=when)


def _when(spec: Any, where: str) -> tuple[tuple[str, tuple[Value, ...]], ...]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: when = {spec!r} must be a table like {{ kernel = \"rbf\" }}")
    out = []
    for other, allowed in spec.items():
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        if not values:
            raise ConfigError(f"{where}: when.{other} lists no value")
        out.append((other, values))
    return tuple(out)


def _order(dims: dict[str, Dimension], where: str) -> tuple[Dimension, ...]:
    """Declaration order, moved so a parameter comes after those its condition names."""
    ordered: list[Dimension] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join((*path[path.index(name):], name))
            raise ConfigError(f"{where}: conditions form a cycle ({cycle})")
        state[name] = "visiting"
        for other, _ in dims[name].when:
            if other in dims:
                visit(other, (*path, name))
        state[name] = "done"
        ordered.append(dims[name])

    for name in dims:
        visit(name, ())
    return tuple(ordered)


def parse_space(system: str, preset: dict[str, Any], cls: type) -> SearchSpace:
    """Validate ``preset['search_space']`` against the constructor of ``cls``."""
    path = preset.get("_path", system)
    raw = preset.get("search_space") or {}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"system preset {path}: no [search_space] table, nothing to tune; "
                          "declare one (see systems/mfcc-stats-svm.toml)")
    signature = inspect.signature(cls.__init__).parameters
    valid = [p for p in signature if p != "self"]
    tunable = [p for p in valid if p not in UNTUNABLE]
    fixed = {p: signature[p].default for p in valid if signature[p].default is not inspect.Parameter.empty}
    fixed.update(preset.get("params", {}))
    dims = {}
    for name, spec in raw.items():
        where = f"system preset {path}: [search_space] {name}"
        if name not in tunable:
            raise ConfigError(f"{where}: not a tunable parameter of family {preset['family']!r}; "
                              f"valid: {', '.join(sorted(tunable))}")
        dims[name] = _dimension(name, spec, where)
    for name, dim in dims.items():
        where = f"system preset {path}: [search_space] {name}"
        for other, allowed in dim.when:
            if other == name:
                raise ConfigError(f"{where}: a condition cannot name the parameter itself")
            if other not in valid:
                raise ConfigError(f"{where}: when names unknown parameter {other!r}; "
                                  f"valid: {', '.join(sorted(tunable))}")
            if other in dims and dims[other].type == "categorical":
                bad = [v for v in allowed if v not in dims[other].choices]
                if bad:
                    raise ConfigError(f"{where}: when.{other} = {bad!r} is not among {other}'s "
                                      f"choices {list(dims[other].choices)}")
    where = f"system preset {path}: [search_space]"
    return SearchSpace(system, _order(dims, where), {k: v for k, v in fixed.items() if k not in dims})


def load_space(system: str, fixed: dict[str, Any] | None = None) -> SearchSpace:
    """The search space of a registered system preset, its ``[params]`` updated by
    ``fixed`` (``tune --set``), which may not name a searched parameter."""
    from musicbench.systems import family_class, get_preset

    preset = get_preset(system)
    fixed = dict(fixed or {})
    searched = sorted(set(fixed) & set(preset["search_space"] or {}))
    if searched:
        raise ConfigError(f"--set {searched[0]}: searched by {preset['_path']} [search_space]; "
                          "a parameter is either searched or fixed, so drop it from --set")
    preset = {**preset, "params": {**preset["params"], **fixed}}
    return parse_space(system, preset, family_class(preset["family"]))
