"""The system registry: presets in ``systems/*.toml``, families imported lazily.

A preset names its ``family`` (a name of the ``FAMILIES`` registry), its default
``[params]`` and its Optuna ``[search_space]``. Register a new family with one entry in
``FAMILIES`` (``FAMILIES.register``, or a lazy ``module:Class`` string); register a new
system by adding one preset file. ``build_system`` refuses unknown
parameter names and values out of range (``System.validate_params``) when a system is
built, so a bad preset fails before any work starts.
"""

from __future__ import annotations

from typing import Any

from musicbench.errors import ConfigError
from musicbench.presets import check_param_names, constructor_params, load_preset, preset_files
from musicbench.registry import Registry
from musicbench.systems.base import System

FAMILIES: Registry[type[System]] = Registry("system family", {
    "classical": "musicbench.systems.classical:ClassicalSystem",
    "gmm": "musicbench.systems.density:GMMSystem",
    "deep": "musicbench.systems.deep.system:DeepSystem",
    "probe": "musicbench.systems.probe:ProbeSystem",
    "metric": "musicbench.systems.metric:MetricSystem",
    "cluster": "musicbench.systems.cluster:ClusterSystem",
}, doc="what a system preset's 'family' names: the estimator class built from its params")


def system_names() -> list[str]:
    return sorted(preset_files("system"))


def family_class(family: str) -> type[System]:
    return FAMILIES[family]


def get_preset(name: str) -> dict[str, Any]:
    preset = load_preset("system", name)
    if "family" not in preset:
        raise ConfigError(f"system preset {preset['_path']}: missing 'family'")
    preset.setdefault("params", {})
    preset.setdefault("search_space", {})
    return preset


def valid_params(cls: type[System]) -> list[str]:
    return constructor_params(cls)


def build_system(name: str, seed: int = 0, device: str = "cpu", **overrides: Any) -> System:
    """A fresh, unfitted system from its preset, with parameter overrides, validated."""
    preset = get_preset(name)
    cls = family_class(preset["family"])
    params = {**preset["params"], **overrides}
    check_param_names(params, valid_params(cls), name, preset["family"])
    if {"seed", "device"} & set(params):
        raise ConfigError(f"system preset {preset['_path']}: seed and device come from the run "
                          "(build_system's arguments), not from parameters")
    system = cls(seed=seed, device=device, **params)
    try:
        system.validate_params()
    except ConfigError as exc:
        raise ConfigError(f"system preset {preset['_path']}: {exc}") from None
    return system


__all__ = ["FAMILIES", "System", "build_system", "family_class", "get_preset", "system_names", "valid_params"]
