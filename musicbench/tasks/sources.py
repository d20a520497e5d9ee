"""Plain sources: a user's own audio without a mirdata loader, as a mirdata dataset.

``source = "folder"``: ``root`` holds one subfolder per class, audio files inside (track
id: ``class/file`` without the extension). ``source = "csv"``: ``manifest`` is a CSV or
TSV file with a header naming ``path`` and ``label`` and optionally ``group``, ``split``
and ``md5`` columns; paths are relative to the manifest, several labels of a multilabel
clip are separated by ``|`` (track id: the path without the extension). A regression
task's manifest has one numeric column per target, named as in ``targets``, in place of
``label``. ``source =
"mtat"``: a MagnaTagATune copy in its own layout (``musicbench.tasks.mtat``); ``source =
"hear"``: a HEAR 2021 task folder (``musicbench.tasks.hear``).

Both build a mirdata index in memory and go through the same loader as mirdata tasks:
the same clip policy, partial-data rules, split hashing and, where ``md5`` is given,
checksums.
"""

from __future__ import annotations

import csv
from functools import cached_property
from pathlib import Path
from typing import Any

from mirdata import core

from musicbench.errors import ConfigError, DataError
from musicbench.tasks.spec import OfficialSplit

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".au", ".aiff", ".aif", ".m4a")
PLAIN = ("folder", "csv", "mtat", "hear")
COLUMNS = ("path", "label", "group", "split", "md5")
TAG_SEPARATOR = "|"


def spec_path(spec_file: str, value: str) -> Path:
    """A path of a task spec: ``~`` expanded, relative paths taken from the spec's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(spec_file).parent / path


def manifest_columns(manifest: Path, targets: tuple[str, ...] = ()) -> list[str]:
    """The header of a manifest; a missing file or a header without path and label (a
    regression task: path and a column per target) is an error naming what is expected."""
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f, delimiter=_delimiter(manifest)), [])
    except OSError as exc:
        raise ConfigError(f"manifest {manifest}: cannot be read ({exc.strerror})") from None
    header = [h.strip() for h in header]
    if targets:
        absent = [c for c in ("path", *targets) if c not in header]
        if absent:
            raise ConfigError(f"manifest {manifest}: no column {', '.join(map(repr, absent))}; a regression "
                              f"task needs 'path' and one numeric column per target {list(targets)} "
                              f"(optional: group, split, md5); found {header}")
        return header
    if "path" not in header or "label" not in header:
        raise ConfigError(f"manifest {manifest}: the first line must name the columns, with 'path' and "
                          f"'label' (optional: group, split, md5); found {header}")
    return header


def _delimiter(manifest: Path) -> str:
    return "\t" if manifest.suffix.lower() in (".tsv", ".tab") else ","


class PlainTrack(core.Track):
    """A clip of a plain source: ``audio_path``, ``label`` and, where given, ``group`` and ``split``."""

    def __init__(self, track_id, data_home, dataset_name, index, metadata):
        super().__init__(track_id, data_home, dataset_name, index, metadata)
        self.audio_path = self.get_path("audio")
        meta = self._track_metadata
        self.label, self.group, self.split = meta.get("label"), meta.get("group"), meta.get("split")
        for name, value in meta.get("targets", {}).items():  # regression targets, by column name
            setattr(self, name, value)


class PlainDataset(core.Dataset):
    """A folder of class subfolders, or a manifest, read as a mirdata dataset."""

    def __init__(self, source: str, location: Path, kind: str, classes: tuple[str, ...] | None = None,
                 sample_rate: int | None = None, ranges: dict[str, tuple[float, float]] | None = None):
        if source not in PLAIN:
            raise ConfigError(f"plain source {source!r}: choose from {', '.join(PLAIN)}")
        self.source, self.location, self.kind, self.classes = source, location, kind, classes
        self.ranges = ranges or {}  # regression: target column -> declared [low, high]
        self.sample_rate = sample_rate  # hear: the audio folder to prefer
        home = location if source in ("folder", "mtat", "hear") else location.parent
        super().__init__(str(home), "local", name=location.name, track_class=PlainTrack,
                         indexes={"default": "local", "local": core.Index(filename=location.name)})
        self.index_path = str(location)

    @cached_property
    def _rows(self) -> dict[str, dict[str, Any]]:
        if self.source == "mtat":
            from musicbench.tasks.mtat import mtat_rows

            return mtat_rows(self.location, self.classes)
        if self.source == "hear":
            from musicbench.tasks.hear import hear_rows

            return hear_rows(self.location, self.sample_rate or 0)
        return self._folder_rows() if self.source == "folder" else self._manifest_rows()

    @cached_property
    def _index(self) -> dict[str, Any]:
        return {"version": "local",
                "tracks": {tid: {"audio": [r["path"], r.get("md5")]} for tid, r in self._rows.items()}}

    @cached_property
    def _metadata(self) -> dict[str, dict[str, Any]]:
        return {tid: {k: v for k, v in r.items() if k not in ("path", "md5")}
                for tid, r in self._rows.items()}

    @property
    def checksum_index(self) -> dict[str, Any]:
        """The index restricted to files with a checksum: only those can fail one."""
        return {"tracks": {t: e for t, e in self._index["tracks"].items() if e["audio"][1]}}

    def _folder_rows(self) -> dict[str, dict[str, Any]]:
        root = self.location
        if not root.is_dir():
            raise DataError(f"folder source {root}: not a folder; 'root' must hold one subfolder per class")
        rows = {}
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for f in sorted(class_dir.rglob("*")):
                if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file():
                    rel = f.relative_to(root)
                    rows[str(rel.with_suffix(""))] = {"path": str(rel), "label": class_dir.name}
        if not rows:
            raise DataError(f"folder source {root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in "
                            "class subfolders; expected ROOT/CLASS/FILE")
        return rows

    def _manifest_rows(self) -> dict[str, dict[str, Any]]:
        manifest = self.location
        manifest_columns(manifest, tuple(self.ranges))
        rows: dict[str, dict[str, Any]] = {}
        with open(manifest, newline="", encoding="utf-8") as f:
            for line, raw in enumerate(csv.DictReader(f, delimiter=_delimiter(manifest)), start=2):
                raw = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
                row = {k: v for k, v in raw.items() if k in COLUMNS}
                if not row.get("path"):
                    raise DataError(f"manifest {manifest}, line {line}: empty path")
                tid = str(Path(row["path"]).with_suffix(""))
                if tid in rows:
                    raise DataError(f"manifest {manifest}, line {line}: {row['path']!r} is listed twice")
                label = row.get("label", "")
                if self.kind == "regression":
                    row["targets"] = self._targets(raw, f"manifest {manifest}, line {line} ({row['path']!r})")
                elif self.kind == "multilabel":
                    row["label"] = [t.strip() for t in label.split(TAG_SEPARATOR) if t.strip()]
                elif not label:
                    raise DataError(f"manifest {manifest}, line {line}: {row['path']!r} has no label")
                for optional in ("group", "split", "md5"):
                    row[optional] = row.get(optional) or None
                rows[tid] = row
        if not rows:
            raise DataError(f"manifest {manifest}: no rows after the header")
        return rows

    def _targets(self, raw: dict[str, str], where: str) -> dict[str, float]:
        """A row's regression targets, each a number within its declared range."""
        from musicbench.tasks.targets import target_value

        try:
            return {name: target_value(raw.get(name), name, bounds) for name, bounds in self.ranges.items()}
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None


def plain_defaults(data: dict[str, Any], official: OfficialSplit | None,
                    where: str) -> tuple[dict[str, Any], OfficialSplit | None]:
    """A folder or CSV source: no dataset or version to name; a manifest's ``group`` column
    is the group field and its ``split`` column the official split unless the spec says
    otherwise, and the default protocol follows from them."""
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


def open_plain(task: Any, require_index: bool = True) -> PlainDataset:
    """A folder, CSV or HEAR source's files of ``task`` (a ``Task``) as a dataset."""
    spec = task.spec
    if spec.source == "hear":
        return PlainDataset("hear", spec_path(spec.path, spec.root), spec.kind, spec.classes,
                            spec.clip.sample_rate)
    return PlainDataset(spec.source, spec_path(spec.path, spec.root or spec.manifest), spec.kind,
                        ranges=spec.ranges)
