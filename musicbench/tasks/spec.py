"""Task specs: which dataset, which label, which kind, which groups, which clip policy.

A spec's settings can also be given on the task reference, ``NAME[:VERSION]+KEY=VALUE``
(a TOML value, a bare word is a string), so ``gtzan_genre+classes=from-data`` reads a
four-genre set in the GTZAN layout without a copied spec.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicbench.audio import ClipPolicy
from musicbench.errors import ConfigError
from musicbench.presets import check_keys, load_preset, preset_files
from musicbench.tasks.literature import NamedProtocol, ReferenceFigure, parse_protocols, parse_references

KINDS = ("multiclass", "multilabel", "regression")


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


SOURCES = ("mirdata", "synthetic", "folder", "csv", "mtat", "hear")
LABEL_FORMATS = ("key",)  # label_format: how annotations are read into class names
FROM_DATA = "from-data"  # classes: whatever labels the data holds, sorted


_NOT_IDENTITY = ("path", "protocols", "protocol_warnings", "reference")
_ADDED = ("label_format", "join", "targets", "ranges")


def _default(name: str) -> Any:
    f = TaskSpec.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not MISSING else f.default


@dataclass(frozen=True)
class TaskSpec:
    """``dataset``, ``version`` and ``label`` name a mirdata loader's dataset and track
    attribute; plain sources (``folder`` with ``root``, ``csv`` with ``manifest``) need
    none of them. ``index`` is a mirdata index file of the task's own (a subset, a custom
    layout) in place of the loader's; relative paths are taken from the spec's folder."""

    name: str
    kind: str
    dataset: str = ""
    version: str = ""
    label: str = "label"
    description: str = ""
    group: str | None = None
    classes: tuple[str, ...] | None = None
    label_threshold: float = 0.5
    label_mask: bool = False  # multilabel: tags missing from a track's annotation are unobserved
    top_k_tags: int | None = None  # multilabel: keep the K most frequent tags of each training part
    min_tag_count: int | None = None  # multilabel: keep tags with at least N positives in training
    default_protocol: str = "kfold:5"
    source: str = "mirdata"
    official: OfficialSplit | None = None
    clip: ClipPolicy = field(default_factory=ClipPolicy)
    synth: dict[str, Any] = field(default_factory=dict)
    root: str | None = None  # source = "folder"
    manifest: str | None = None  # source = "csv"
    index: str | None = None  # an own mirdata index file
    on_bad_track: str = "error"  # or "skip": damaged tracks are left out like missing ones
    label_format: str | None = None  # "key": annotations read into the 24 keys (tasks.keys)
    join: dict[str, str] = field(default_factory=dict)  # more mirdata datasets, name -> version
    targets: tuple[str, ...] = ()  # regression: the continuous targets (track attributes / CSV columns)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # regression: target -> [low, high]
    protocols: dict[str, NamedProtocol] = field(default_factory=dict)  # split lists by name
    protocol_warnings: dict[str, str] = field(default_factory=dict)  # protocol kind or name -> fault
    reference: tuple[ReferenceFigure, ...] = ()  # published figures (tasks.literature)
    path: str = ""

    def identity(self) -> dict[str, Any]:
        """The settings that define what a cell computes, for its key: not where the spec
        lives, nor what only reports show (figures, warnings; a named protocol's lists are
        in the split hash); settings added since keys were first made count only where set."""
        return {k: v for k, v in asdict(self).items()
                if k not in _NOT_IDENTITY and not (k in _ADDED and v == _default(k))}

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
            data["protocols"] = parse_protocols(data.pop("protocols", {}), where, Path(where).parent)
            data["reference"] = parse_references(data.pop("reference", []), where)
            if "targets" in data:
                data["targets"] = tuple(data["targets"])
            if "ranges" in data:
                data["ranges"] = _ranges(data["ranges"], where)
            if data.get("classes") == FROM_DATA:
                data["classes"] = None
            elif "classes" in data:
                data["classes"] = tuple(data["classes"])
            if data.get("source") in ("folder", "csv"):
                data, official = _plain_defaults(data, official, where)
            elif data.get("source") == "mtat":  # a user's copy: one version, as for own files
                data = {"dataset": "magnatagatune", "version": "local", **data}
            elif data.get("source") == "hear":
                data, official = _hear_defaults(data, official, where)
            spec = cls(official=official, clip=clip, path=where, **data)
        except TypeError as exc:
            raise ConfigError(f"task spec {where}: {exc}") from None
        if spec.kind not in KINDS:
            raise ConfigError(f"task spec {where}: kind {spec.kind!r} must be one of {KINDS}")
        if spec.on_bad_track not in ("error", "skip"):
            raise ConfigError(
                f"task spec {where}: on_bad_track {spec.on_bad_track!r} must be 'error' or 'skip'")
        if spec.source not in SOURCES:
            raise ConfigError(f"task spec {where}: source must be one of {', '.join(SOURCES)}")
        if spec.source in ("mirdata", "synthetic") and not (spec.dataset and spec.version):
            raise ConfigError(f"task spec {where}: a {spec.source} task needs 'dataset' and 'version'")
        for key in ("top_k_tags", "min_tag_count"):
            value = getattr(spec, key)
            if value is not None and (spec.kind != "multilabel" or not isinstance(value, int) or value < 1):
                raise ConfigError(f"task spec {where}: {key} = {value!r}: a positive integer, for "
                                  "multilabel tasks only")
        if spec.label_format is not None and (spec.label_format not in LABEL_FORMATS
                                              or spec.kind != "multiclass"):
            raise ConfigError(f"task spec {where}: label_format {spec.label_format!r}: one of "
                              f"{LABEL_FORMATS}, for multiclass tasks")
        _check_targets(spec, where)
        if spec.join and spec.source != "mirdata":
            raise ConfigError(f"task spec {where}: join = {{...}} joins mirdata datasets; source must be "
                              "'mirdata'")
        if spec.source == "folder" and spec.kind != "multiclass":
            raise ConfigError(f"task spec {where}: a folder source gives one class per clip (its "
                              "subfolder): kind must be 'multiclass'; use source = \"csv\" for tags")
        return spec


def _ranges(value: Any, where: str) -> dict[str, tuple[float, float]]:
    """``{target = [low, high]}`` with numbers, low below high."""
    if not isinstance(value, dict):
        raise ConfigError(f"task spec {where}: ranges must be a table, target = [low, high]")
    out = {}
    for name, bounds in value.items():
        ok = (isinstance(bounds, (list, tuple)) and len(bounds) == 2
              and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds))
        if not ok or not bounds[0] < bounds[1]:
            raise ConfigError(f"task spec {where}: ranges.{name} = {bounds!r}: expected [low, high], two "
                              "numbers with low < high")
        out[str(name)] = (float(bounds[0]), float(bounds[1]))
    return out


def _check_targets(spec: TaskSpec, where: str) -> None:
    """A regression task names its targets, each once and each with a range; other kinds
    have classes instead."""
    if spec.kind != "regression":
        if spec.targets or spec.ranges:
            raise ConfigError(f"task spec {where}: targets and ranges are for kind = \"regression\" tasks")
        return
    if not spec.targets or len(set(spec.targets)) != len(spec.targets):
        raise ConfigError(f"task spec {where}: a regression task needs targets = [NAME, ...], each named "
                          f"once (found {list(spec.targets)})")
    if spec.classes is not None:
        raise ConfigError(f"task spec {where}: a regression task has targets, not classes")
    if set(spec.ranges) != set(spec.targets):
        raise ConfigError(f"task spec {where}: ranges must give [low, high] for every target and no other: "
                          f"targets {list(spec.targets)}, ranges for {sorted(spec.ranges)}")


def _hear_defaults(data: dict[str, Any], official: OfficialSplit | None,
                   where: str) -> tuple[dict[str, Any], OfficialSplit | None]:
    """A HEAR task folder declares its kind, classes and splits; the spec may restate the
    kind but not contradict it, and the folder's splits are the official protocol."""
    from musicbench.tasks.hear import read_metadata
    from musicbench.tasks.sources import spec_path

    if not data.get("root"):
        raise ConfigError(f"task spec {where}: source = \"hear\" needs root = PATH (a HEAR task folder "
                          "holding task_metadata.json)")
    task = read_metadata(spec_path(where, data["root"]))
    if data.get("kind", task.kind) != task.kind:
        raise ConfigError(f"task spec {where}: kind {data['kind']!r}, but the HEAR task is {task.kind!r}")
    if official is None:
        official = (OfficialSplit(attribute="split", folds="rotate") if task.split_mode != "trainvaltest"
                    else OfficialSplit(attribute="split", train=("train",), valid=("valid",), test=("test",)))
    data = {"dataset": task.name, "version": "local", "kind": task.kind, "classes": task.classes,
            "default_protocol": "official", **data}
    return data, official


def _plain_defaults(data: dict[str, Any], official: OfficialSplit | None,
                    where: str) -> tuple[dict[str, Any], OfficialSplit | None]:
    """A folder or CSV source: no dataset or version to name; a manifest's ``group`` column
    is the group field and its ``split`` column the official split unless the spec says
    otherwise, and the default protocol follows from them."""
    from musicbench.tasks.sources import manifest_columns, spec_path

    key = "root" if data["source"] == "folder" else "manifest"
    if not data.get(key):
        raise ConfigError(f"task spec {where}: source = {data['source']!r} needs {key} = PATH")
    data = {"dataset": data["source"], "version": "local", **data}
    targets = tuple(data.get("targets", ())) if data.get("kind") == "regression" else ()
    columns = manifest_columns(spec_path(where, data[key]), targets) if key == "manifest" else []
    if "group" in columns:
        data.setdefault("group", "group")
    if "split" in columns and official is None:
        official = OfficialSplit(attribute="split", train=("train",), valid=("valid", "validation"),
                                 test=("test",))
    if "default_protocol" not in data:
        data["default_protocol"] = ("official" if official else
                                    f"group-kfold:{data['group']}" if data.get("group") else "kfold:5")
    return data, official


def with_settings(data: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A spec's preset data with ``settings`` (from ``NAME+KEY=VALUE``) laid over it."""
    fields = set(TaskSpec.__dataclass_fields__) - {"name", "path"}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ConfigError(f"task setting(s) {unknown}: valid keys are {', '.join(sorted(fields))}")
    return {**data, **settings}


def task_names() -> list[str]:
    return sorted(preset_files("task"))


def get_spec(name: str, settings: dict[str, Any] | None = None) -> TaskSpec:
    return TaskSpec.from_preset(with_settings(load_preset("task", name), settings or {}))
