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
from musicbench.errors import ConfigError, UnknownNameError
from musicbench.presets import check_keys, load_preset, preset_files
from musicbench.registry import Registry, resolve
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


@dataclass(frozen=True)
class Source:
    """Where a task's clips come from: each callable a lazy ``module:function`` reference,
    imported only when a task of the source is parsed or opened.

    ``open(task, require_index)``: the mirdata-style dataset (``core.Dataset`` or one of
    its shape); ``defaults(data, official, where)``: the spec's TOML data and official
    split, completed with what the source implies (dataset, version, kind, splits) before
    the spec is built; ``versions(spec)``: the versions its data comes in (None: a user's
    own files, one version); ``named``: the spec must name ``dataset`` and ``version``;
    ``joins``: it can read several datasets as one (``join``); ``kinds``: the task kinds
    it can give, and ``kinds_hint`` what to use instead.
    """

    doc: str
    open: str
    defaults: str | None = None
    versions: str | None = None
    named: bool = False
    joins: bool = False
    kinds: tuple[str, ...] = KINDS
    kinds_hint: str = ""

    def call(self, what: str, *args: Any) -> Any:
        return resolve(getattr(self, what))(*args)


SOURCES: Registry[Source] = Registry("task source", {
    "mirdata": Source("a mirdata loader's dataset ('dataset', 'version', 'label')",
                      "musicbench.tasks.loader:open_mirdata",
                      versions="musicbench.tasks.loader:mirdata_versions", named=True, joins=True),
    "synthetic": Source("clips generated into the cache on first use ('synth')",
                        "musicbench.tasks.synth:open_synth",
                        versions="musicbench.tasks.synth:synth_versions", named=True),
    "folder": Source("your audio, one subfolder per class ('root')", "musicbench.tasks.sources:open_plain",
                     "musicbench.tasks.sources:plain_defaults", kinds=("multiclass",),
                     kinds_hint="a folder source gives one class per clip (its subfolder); use source = "
                                "\"csv\" for tags or targets"),
    "csv": Source("your audio listed in a CSV or TSV manifest ('manifest')",
                  "musicbench.tasks.sources:open_plain", "musicbench.tasks.sources:plain_defaults"),
    "mtat": Source("a MagnaTagATune copy in its own layout ('root' or the data home)",
                   "musicbench.tasks.mtat:open_mtat", "musicbench.tasks.mtat:mtat_defaults"),
    "hear": Source("a HEAR 2021 task folder ('root')", "musicbench.tasks.sources:open_plain",
                   "musicbench.tasks.hear:hear_defaults"),
}, doc="what a task spec's 'source' names: where its clips and labels are read from")
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
            try:
                source = SOURCES[data.get("source", _default("source"))]
            except UnknownNameError as exc:
                raise ConfigError(f"task spec {where}: {exc}") from None
            if source.defaults:
                data, official = source.call("defaults", data, official, where)
            spec = cls(official=official, clip=clip, path=where, **data)
        except TypeError as exc:
            raise ConfigError(f"task spec {where}: {exc}") from None
        if spec.kind not in KINDS:
            raise ConfigError(f"task spec {where}: kind {spec.kind!r} must be one of {KINDS}")
        if spec.on_bad_track not in ("error", "skip"):
            raise ConfigError(
                f"task spec {where}: on_bad_track {spec.on_bad_track!r} must be 'error' or 'skip'")
        if source.named and not (spec.dataset and spec.version):
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
        if spec.join and not source.joins:
            joining = [name for name in SOURCES if SOURCES[name].joins]
            raise ConfigError(f"task spec {where}: join = {{...}} joins datasets of source "
                              f"{' or '.join(map(repr, joining))}, not {spec.source!r}")
        if spec.kind not in source.kinds:
            gives = " or ".join(map(repr, source.kinds))
            raise ConfigError(f"task spec {where}: with source = {spec.source!r}, kind must be {gives}, "
                              f"not {spec.kind!r}; {source.kinds_hint}")
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
