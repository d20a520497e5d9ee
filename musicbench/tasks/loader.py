"""Tasks: a mirdata (or embedded synthetic) dataset read into labelled clips.

mirdata differs per dataset (index files, split attributes, label types); this module
hides that. It also handles the offline index folder and partial data on disk.
"""

from __future__ import annotations

import importlib
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.audio import check_audio, load_audio
from musicbench.errors import ConfigError, DataAbsent, DataError, UnknownNameError
from musicbench.tasks.clips import Clip, ClipSet
from musicbench.tasks.spec import SOURCES, TaskSpec, get_spec

INDEX_DIR_ENV = "MUSICBENCH_INDEX_DIR"
DATA_HOME_ENV = "MUSICBENCH_DATA_HOME"
ON_BAD_TRACK = ("error", "skip")
SAMPLE_VERSION = "sample"  # the version of mirdata's sample indexes (``TASK:sample``)


def split_settings(ref: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:VERSION]+KEY=VALUE+...`` -> (``NAME[:VERSION]``, settings); a value is TOML
    (``5``, ``["a", "b"]``), a bare word a string."""
    import tomllib

    parts = ref.split("+")
    settings: dict[str, Any] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ConfigError(f"task reference {ref!r}: expected NAME[:VERSION]+KEY=VALUE, got {part!r}")
        try:
            settings[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            settings[key] = value
    head, _, version = parts[0].partition(":")
    return head + (f":{version}" if version else ""), settings


def parse_task_ref(ref: str) -> tuple[str, str | None]:
    """``name`` or ``name:version`` (settings ``+KEY=VALUE`` left aside)."""
    name, _, version = split_settings(ref)[0].partition(":")
    if not name:
        raise ConfigError(f"task reference {ref!r}: expected NAME or NAME:VERSION")
    return name, (version or None)


def resolve_data_home(root: str | None, dataset: str) -> str | None:
    """A folder of datasets (``ROOT/<dataset>``, like ~/mir_datasets) or one dataset's folder."""
    root = root or os.environ.get(DATA_HOME_ENV)
    if not root:
        return None
    nested = Path(root) / dataset
    return str(nested if nested.is_dir() else Path(root))


class UnusableLabel(DataError):
    """A track whose annotation gives no label the task can use; left out like a damaged
    track with ``--on-bad-track skip``."""

    def __init__(self, track_id: str, why: str):
        self.track_id, self.why = track_id, why
        super().__init__(f"track {track_id!r}: {why}")


class Task:
    """A task spec bound to a version, a data home and an index folder."""

    def __init__(
        self,
        spec: TaskSpec,
        version: str | None = None,
        data_home: str | None = None,
        index_dir: str | None = None,
        settings: dict[str, Any] | None = None,
    ):
        self.spec = spec
        self.settings = dict(settings or {})  # laid over the spec by the task reference
        self.version = version or spec.version
        self.data_home_root = data_home
        self.index_dir = index_dir or os.environ.get(INDEX_DIR_ENV)

    @property
    def _suffix(self) -> str:
        import json

        return "".join(f"+{k}={v if isinstance(v, str) else json.dumps(v)}"
                       for k, v in sorted(self.settings.items()))

    @property
    def name(self) -> str:
        """The spec's name, with the reference's settings: results of other settings stay apart."""
        return self.spec.name + self._suffix

    @property
    def ref(self) -> str:
        """``NAME:VERSION+KEY=VALUE...``, which ``get_task`` reads back."""
        return f"{self.spec.name}:{self.version}{self._suffix}"

    @cached_property
    def dataset(self) -> Any:
        """The mirdata ``core.Dataset`` (synthetic tasks generate theirs on first use)."""
        return self.open_dataset(require_index=True)

    def open_dataset(self, require_index: bool) -> Any:
        return SOURCES[self.spec.source].call("open", self, require_index)

    def _mirdata(self, dataset: str, version: str, require_index: bool, own_index: bool = False) -> Any:
        """A mirdata dataset at ``version``, its index from the index folder (or the task's
        own ``index`` file, for the task's main dataset)."""
        module = importlib.import_module(f"mirdata.datasets.{dataset}")
        try:
            ds = module.Dataset(data_home=resolve_data_home(self.data_home_root, dataset), version=version)
        except ValueError:
            valid = task_versions(self.spec) if own_index else [v for v in module.INDEXES if v != "test"]
            what = f"version of {self.name if own_index else dataset}"
            raise UnknownNameError(what, version, valid) from None
        filename = ds._index_data.filename
        if self.spec.index and own_index:  # the task's own index file
            from musicbench.tasks.sources import spec_path

            ds.index_path = str(spec_path(self.spec.path, self.spec.index))
            filename = ds.index_path
        elif self.index_dir:
            ds.index_path = os.path.join(self.index_dir, filename)
        if require_index and not os.path.exists(ds.index_path):
            where = f"index folder {self.index_dir}" if self.index_dir else "mirdata's package"
            raise DataAbsent(
                f"task {self.ref}: index file {filename} not found in {where}. Online: "
                f"`musicbench data fetch {self.ref}`. Offline: pass --index-dir (or set "
                f"{INDEX_DIR_ENV}) to a folder holding {filename}."
            )
        return ds

    @property
    def data_home(self) -> str:
        return self.dataset.data_home

    def track_ids(self) -> list[str]:
        return list(self.dataset.track_ids)

    def track_attribute(self, track_id: str, field: str) -> str | None:
        track = self.dataset.track(track_id)
        try:
            value = getattr(track, field)
        except AttributeError:
            valid = [a for a in dir(track) if not a.startswith("_") and not a.endswith("_path")]
            raise UnknownNameError(f"attribute of {self.name} tracks", field, valid) from None
        except FileNotFoundError as exc:
            raise DataError(
                f"task {self.ref}: metadata for track {track_id!r} is missing ({exc}). "
                f"Fetch the dataset's annotations (musicbench data fetch {self.ref})."
            ) from None
        return None if value is None else str(value)

    def _label(self, track: Any) -> str | tuple[str, ...] | tuple[float, ...]:
        if self.spec.kind == "regression":
            from musicbench.tasks.targets import read_targets

            return read_targets(self, track)
        try:
            value = getattr(track, self.spec.label)
        except FileNotFoundError as exc:
            raise DataError(
                f"task {self.ref}: the label of track {track.track_id!r} needs a metadata file "
                f"that is missing ({exc}). Fetch the annotations (musicbench data fetch {self.ref})."
            ) from None
        if self.spec.label_format == "key":
            return self._key(track.track_id, value)
        if self.spec.kind == "multiclass":
            if value is None or value == "":
                raise DataError(f"task {self.ref}: track {track.track_id!r} has no {self.spec.label}")
            return str(value)
        if isinstance(value, dict):  # tag -> confidence of the annotated tags (openmic2018)
            value = [k for k, v in value.items() if v >= self.spec.label_threshold]
        elif value is None:
            value = []
        elif isinstance(value, str):
            value = [value]
        return tuple(sorted({str(v) for v in value}))

    def _key(self, track_id: str, value: Any) -> str:
        """One of the 24 keys; an annotation naming none, or several (a modulation), makes
        the track unusable for a one-key task (``UnusableLabel``)."""
        from musicbench.tasks.keys import key_name

        given = [value] if isinstance(value, str) else list(value or [])
        keys = {key_name(v) for v in given}
        if len(keys) != 1 or None in keys:
            raise UnusableLabel(track_id, f"key annotation {given!r} names "
                                f"{'no' if not given or None in keys else 'more than one'} single major "
                                "or minor key")
        return keys.pop()

    def _observed(self, track: Any) -> tuple[str, ...] | None:
        """With ``label_mask``, the tags a track's annotation covers (the keys of a tag ->
        confidence mapping); the rest are unobserved, not negative."""
        if not (self.spec.label_mask and self.spec.kind == "multilabel"):
            return None
        value = getattr(track, self.spec.label)
        return tuple(sorted(value)) if isinstance(value, dict) else None

    def _audio_path(self, track: Any) -> str:
        path = getattr(track, "audio_path", None)
        if not path:
            raise DataError(f"task {self.ref}: track {track.track_id!r} has no audio in the index")
        return path

    def clips(self, allow_partial: bool = False, on_bad_track: str | None = None,
              verify: bool = False) -> ClipSet:
        """Every usable track of the index as a clip; refuses partial data unless allowed.

        Every file present is probed (decodable, not empty, not truncated, not silent; its
        md5 against the index with ``verify``). A damaged track is an error, or with
        ``on_bad_track="skip"`` (default: the task spec's setting) is left out like a
        missing one and listed in ``ClipSet.bad``."""
        on_bad_track = on_bad_track or self.spec.on_bad_track
        if on_bad_track not in ON_BAD_TRACK:
            raise ConfigError(f"on_bad_track {on_bad_track!r}: must be one of {', '.join(ON_BAD_TRACK)}")
        clips, missing, unusable = [], [], {}
        ds = self.dataset
        for track_id in ds.track_ids:
            track = ds.track(track_id)
            path = self._audio_path(track)
            if not os.path.exists(path):
                missing.append(track_id)
                continue
            group = None
            if self.spec.group:
                group = self.track_attribute(track_id, self.spec.group)
            split = None
            if self.spec.official and self.spec.official.attribute:
                split = self.track_attribute(track_id, self.spec.official.attribute)
            try:
                label = self._label(track)
            except UnusableLabel as exc:
                unusable[track_id] = exc.why
                continue
            clips.append(Clip(track_id, path, label, group, split, self._observed(track)))
        n_index = len(clips) + len(missing) + len(unusable)
        if not clips and not unusable:
            raise DataAbsent(
                f"task {self.ref}: none of the {n_index} indexed tracks is on disk under "
                f"{ds.data_home}. Point --data-home (or {DATA_HOME_ENV}) at the data."
            )
        if missing and not allow_partial:
            raise DataError(
                f"task {self.ref}: {len(missing)} of {n_index} tracks in the index are not on disk "
                f"under {ds.data_home} (first: {', '.join(missing[:3])}). Fetch them "
                f"(musicbench data fetch {self.ref}), point --data-home at the data, or pass "
                f"--allow-partial to run on the {len(clips)} tracks present (the count is recorded)."
            )
        bad = {**unusable, **self.damaged(clips, verify)}
        if bad and on_bad_track == "error":
            raise DataError(
                f"task {self.ref}: {len(bad)} track(s) cannot be used:\n  "
                + "\n  ".join(f"{t}: {why}" for t, why in list(bad.items())[:20])
                + ("\n  ..." if len(bad) > 20 else "")
                + "\nRe-fetch them (musicbench data fetch), or pass --on-bad-track skip to leave them "
                "out (their ids are recorded with every result)."
            )
        clips = [c for c in clips if c.track_id not in bad]
        if not clips:
            raise DataError(f"task {self.ref}: every track on disk is damaged ({len(bad)})")
        return ClipSet(self, clips, self._classes(clips), n_index, missing, bad)

    def damaged(self, clips: list[Clip], verify: bool = False) -> dict[str, str]:
        """Track id -> what is wrong with its file, for the clips whose file is unusable."""
        from concurrent.futures import ThreadPoolExecutor

        md5 = self._checksums() if verify else {}
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # libsndfile frees the GIL
            found = pool.map(lambda c: check_audio(c.path, self.spec.clip, md5.get(c.track_id)), clips)
            return {c.track_id: why for c, why in zip(clips, found, strict=True) if why}

    def _checksums(self) -> dict[str, str]:
        """Track id -> md5 of its audio file, from the index."""
        tracks = self.dataset._index.get("tracks", {})
        out = {}
        for track_id, files in tracks.items():
            audio = files.get("audio") or next(iter(files.values()), None)
            if audio and len(audio) > 1 and audio[1]:
                out[track_id] = audio[1]
        return out

    def _classes(self, clips: list[Clip]) -> list[str]:
        if self.spec.kind == "regression":  # the targets stand where classes would
            return list(self.spec.targets)
        if self.spec.kind == "multiclass":
            seen = {c.label for c in clips}
        else:
            seen = {tag for c in clips for tag in c.label}
        if self.spec.classes is None:
            return sorted(seen)
        unknown = seen - set(self.spec.classes)
        if unknown:
            raise DataError(
                f"task {self.ref}: labels {sorted(unknown)} are not among the classes declared "
                f"in {self.spec.path}; add them there or fix the data."
            )
        return list(self.spec.classes)

    def load_audio(self, clip: Clip) -> np.ndarray:
        return load_audio(clip.path, clip.track_id, self.spec.clip)

    def status(self, checksums: bool = True) -> dict[str, Any]:
        """Tracks in the index, on disk, missing, damaged (see ``damaged``) and (optionally)
        failing checksums, with every failing id."""
        ds = self.dataset
        ids = list(ds.track_ids)
        paths = {t: self._audio_path(ds.track(t)) for t in ids}
        missing = [t for t in ids if not os.path.exists(paths[t])]
        gone = set(missing)
        present = [Clip(t, paths[t], "") for t in ids if t not in gone]
        damaged = self.damaged(present)
        bad: list[str] = []
        if checksums:
            from mirdata import validate

            index = getattr(ds, "checksum_index", ds._index)  # plain sources: files with an md5
            missing_files, invalid = validate.validator(index, ds.data_home, verbose=False)
            bad = sorted(invalid.get("tracks", {}))
        return {
            "task": self.ref,
            "data_home": ds.data_home,
            "index": ds.index_path,
            "in_index": len(ids),
            "on_disk": len(ids) - len(missing),
            "missing": len(missing),
            "bad_checksum": len(bad),
            "damaged": len(damaged),
            "missing_ids": missing,
            "bad_checksum_ids": bad,
            "damaged_ids": damaged,
        }


def task_versions(spec: TaskSpec) -> list[str]:
    """The versions a task can be run at (``TASK:VERSION``), its default first."""
    source = SOURCES[spec.source]
    found = source.call("versions", spec) if source.versions else []
    return [spec.version] + [v for v in found if v != spec.version]


def mirdata_versions(spec: TaskSpec) -> list[str]:
    return [v for v in importlib.import_module(f"mirdata.datasets.{spec.dataset}").INDEXES
            if v not in ("default", "test")]


def open_mirdata(task: Task, require_index: bool) -> Any:
    """The task's mirdata dataset, or its datasets joined as one (``join``)."""
    spec = task.spec
    ds = task._mirdata(spec.dataset, task.version, require_index, own_index=True)
    if not spec.join:
        return ds
    from musicbench.tasks.joined import JoinedDataset

    # mirdata's sample of a joined task is the samples of all its datasets
    versions = {name: SAMPLE_VERSION if task.version == SAMPLE_VERSION else version
                for name, version in spec.join.items()}
    return JoinedDataset({spec.dataset: ds, **{name: task._mirdata(name, version, require_index)
                                               for name, version in versions.items()}})


def get_task(
    ref: str, data_home: str | None = None, index_dir: str | None = None
) -> Task:
    """Build a task from ``name[:version]``; unknown names list the valid ones."""
    ref, settings = split_settings(ref)
    name, version = parse_task_ref(ref)
    return Task(get_spec(name, settings), version, data_home, index_dir, settings)
