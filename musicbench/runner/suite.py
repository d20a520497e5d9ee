"""Suites: which tasks x protocols x systems x seeds a run covers (``bench/suites/*.toml``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from musicbench.errors import ConfigError
from musicbench.presets import check_keys, load_preset, preset_files


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    systems: tuple[str, ...]
    protocols: tuple[str, ...] = ()  # empty: each task's default protocol
    seeds: tuple[int, ...] = (0,)
    allow_partial: bool = False
    description: str = ""
    augment: tuple[str, ...] = ("none",)  # train-time augmentation axis
    deform: tuple[str, ...] = ("none",)  # test-time deformation axis
    params: dict = field(default_factory=dict)  # system name -> parameter overrides
    # named variants of presets for ablations: name -> {"system": preset, "params": {...}}
    variants: dict = field(default_factory=dict)
    reference: str | None = None  # the row ablation deltas are measured against
    tuned: dict = field(default_factory=dict)  # system name -> {"study": .., "trials": ..}
    on_bad_track: str | None = None  # "error" or "skip"; None: each task's own setting
    skip_absent: bool = False  # a task whose data is not on this machine is skipped, with the reason
    # each system runs on the tasks of the kinds it handles only (a suite mixing classification,
    # regression and clustering); without it a task a system cannot handle is refused
    by_kind: bool = False

    def runs(self, system, kind: str) -> bool:
        """Whether the built ``system`` runs on tasks of ``kind`` in this suite."""
        return not self.by_kind or kind in system.kinds

    def resolve_system(self, name: str) -> tuple[str, dict]:
        """A suite system name -> (preset name, parameter overrides)."""
        variant = self.variants.get(name, {})
        return variant.get("system", name), {**variant.get("params", {}), **self.params.get(name, {})}

    def with_overrides(self, **kw) -> Suite:
        return replace(self, **{k: tuple(v) if isinstance(v, list) else v
                                for k, v in kw.items() if v})


def suite_names() -> list[str]:
    return sorted(preset_files("suite"))


def get_suite(name: str) -> Suite:
    data = load_preset("suite", name)
    where = data.pop("_path")
    check_keys(f"suite {where}", data, [f for f in Suite.__dataclass_fields__ if f != "tuned"])
    try:
        suite = Suite(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except TypeError as exc:
        raise ConfigError(f"suite {where}: {exc}") from None
    if not suite.tasks or not suite.systems:
        raise ConfigError(f"suite {where}: needs at least one task and one system")
    for name, variant in suite.variants.items():
        if set(variant) - {"system", "params"} or "system" not in variant:
            raise ConfigError(f"suite {where}: variant {name!r} needs 'system' and optional 'params'")
    for flag in ("allow_partial", "skip_absent", "by_kind"):
        if not isinstance(getattr(suite, flag), bool):
            raise ConfigError(f"suite {where}: {flag} is {getattr(suite, flag)!r}; valid: true or false")
    if suite.on_bad_track not in (None, "error", "skip"):
        raise ConfigError(f"suite {where}: on_bad_track {suite.on_bad_track!r} must be 'error' or 'skip'")
    if suite.reference and suite.reference not in suite.systems:
        raise ConfigError(f"suite {where}: reference {suite.reference!r} is not one of its systems")
    return suite
