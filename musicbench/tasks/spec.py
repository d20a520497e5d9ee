"""Task specs: which dataset, which label, which kind, which groups, which clip policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from musicbench.audio import ClipPolicy
from musicbench.errors import ConfigError
from musicbench.presets import check_keys, load_preset, preset_files

KINDS = ("multiclass", "multilabel")


@dataclass(frozen=True)
class OfficialSplit:
    """How mirdata exposes a dataset's own split; see ``datasets/*.toml`` ``[official]``.

    Either a track ``attribute`` whose values name the part (``train``/``valid``/``test``
    value lists), or whose values are fold numbers (``folds = "rotate"``: fold k is the
    test part, fold k+1 the valid part); or a dataset ``method`` returning
    ``{part: [track ids]}`` for each of ``n`` split numbers.
    """

    attribute: str | None = None
    method: str | None = None
    n: int = 1
    folds: str | None = None
    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    parts: dict[str, str] = field(default_factory=dict)  # method part name -> our part


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str
    version: str
    kind: str
    label: str
    description: str = ""
    group: str | None = None
    classes: tuple[str, ...] | None = None
    label_threshold: float = 0.5
    default_protocol: str = "kfold:5"
    source: str = "mirdata"
    official: OfficialSplit | None = None
    clip: ClipPolicy = field(default_factory=ClipPolicy)
    synth: dict[str, Any] = field(default_factory=dict)
    on_bad_track: str = "error"  # or "skip": damaged tracks are left out like missing ones
    path: str = ""

    @classmethod
    def from_preset(cls, data: dict[str, Any]) -> TaskSpec:
        data = dict(data)
        where = data.pop("_path", data.get("name", "?"))
        check_keys(f"task spec {where}", data, [f for f in cls.__dataclass_fields__ if f != "path"])
        try:
            official = data.pop("official", None)
            if official is not None:
                official = OfficialSplit(
                    **{k: tuple(v) if isinstance(v, list) else v for k, v in official.items()}
                )
            clip = ClipPolicy.from_dict(data.pop("clip", {}))
            if "classes" in data:
                data["classes"] = tuple(data["classes"])
            spec = cls(official=official, clip=clip, path=where, **data)
        except TypeError as exc:
            raise ConfigError(f"task spec {where}: {exc}") from None
        if spec.kind not in KINDS:
            raise ConfigError(f"task spec {where}: kind {spec.kind!r} must be one of {KINDS}")
        if spec.on_bad_track not in ("error", "skip"):
            raise ConfigError(
                f"task spec {where}: on_bad_track {spec.on_bad_track!r} must be 'error' or 'skip'")
        if spec.source not in ("mirdata", "synthetic"):
            raise ConfigError(f"task spec {where}: source must be 'mirdata' or 'synthetic'")
        return spec


def task_names() -> list[str]:
    return sorted(preset_files("task"))


def get_spec(name: str) -> TaskSpec:
    return TaskSpec.from_preset(load_preset("task", name))
