"""HEAR 2021 task folders as a source (``source = "hear"``, ``root = FOLDER``), read as
HEAR's kit lays them out, so the HEAR benchmark's tasks (and any a lab preprocessed with
hear-preprocess) run under musicbench's protocol, cache and leaderboard.

A task folder holds ``task_metadata.json`` (``embedding_type``, ``prediction_type``,
``split_mode``, ``splits``), ``labelvocabulary.csv`` (``idx``, ``label``), one
``SPLIT.json`` per split (file name -> labels) and the audio per sample rate,
``RATE/SPLIT/FILE``. The splits are the protocol ``official``, cut as heareval cuts them:
``trainvaltest`` is one fold; k-fold tasks (``fold00`` …) rotate, fold i the test part
and fold i+1 the validation part. Only scene-level tasks fit a clip-level harness: event
tasks (timestamped labels) are refused.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicbench.errors import ConfigError, DataError
from musicbench.tasks.spec import OfficialSplit

METADATA = "task_metadata.json"
VOCABULARY = "labelvocabulary.csv"
SPLIT_MODES = ("trainvaltest", "new_split_kfold", "presplit_kfold")
KINDS = ("multiclass", "multilabel")


@dataclass(frozen=True)
class HearTask:
    """What a HEAR task folder declares about itself."""

    name: str
    kind: str
    split_mode: str
    splits: tuple[str, ...]
    classes: tuple[str, ...]


def read_metadata(root: Path) -> HearTask:
    """The task folder's metadata and label vocabulary; anything HEAR's kit would not
    read, or an event task, is refused naming the file and what is expected."""
    meta_file = root / METADATA
    if not meta_file.is_file():
        raise DataError(f"HEAR task folder {root}: no {METADATA}; expected a folder as hear-preprocess "
                        f"writes it ({METADATA}, {VOCABULARY}, SPLIT.json, RATE/SPLIT/audio)")
    meta = _json(meta_file)
    missing = [k for k in ("embedding_type", "prediction_type", "split_mode") if k not in meta]
    if missing:
        raise DataError(f"{meta_file}: missing {', '.join(missing)}")
    if meta["embedding_type"] != "scene":
        raise DataError(f"{meta_file}: embedding_type {meta['embedding_type']!r}: musicbench runs "
                        "scene-level HEAR tasks (one label set per clip); event tasks, with timestamped "
                        "labels, are not supported")
    if meta["prediction_type"] not in KINDS:
        raise DataError(f"{meta_file}: prediction_type {meta['prediction_type']!r}; "
                        f"valid: {', '.join(KINDS)}")
    if meta["split_mode"] not in SPLIT_MODES:
        raise DataError(f"{meta_file}: split_mode {meta['split_mode']!r}; valid: {', '.join(SPLIT_MODES)}")
    splits = tuple(meta.get("splits") or ("train", "valid", "test"))
    if meta["split_mode"] == "trainvaltest" and set(splits) != {"train", "valid", "test"}:
        raise DataError(f"{meta_file}: split_mode trainvaltest needs the splits train, valid and test; "
                        f"found {list(splits)}")
    return HearTask(str(meta.get("task_name", root.name)), meta["prediction_type"], meta["split_mode"],
                    splits, _vocabulary(root / VOCABULARY))


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _vocabulary(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise DataError(f"HEAR task folder {path.parent}: no {VOCABULARY} (columns idx, label)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"idx", "label"} <= set(rows[0]):
        raise DataError(f"{path}: expected the columns idx and label")
    return tuple(r["label"] for r in sorted(rows, key=lambda r: int(r["idx"])))


def audio_rate(root: Path, sample_rate: int) -> int:
    """The audio folder to read: the task's own rate where the folder has it (no
    resampling), else the highest rate there (resampled on load)."""
    rates = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not rates:
        raise DataError(f"HEAR task folder {root}: no audio folder (RATE/SPLIT/FILE, e.g. 16000/train/)")
    return sample_rate if sample_rate in rates else rates[-1]


def hear_rows(root: Path, sample_rate: int) -> dict[str, dict[str, Any]]:
    """Track id (``SPLIT/FILE`` without suffix) -> ``path``, ``label`` (one class, or the
    tag list of a multilabel task), ``group`` (None) and ``split``."""
    task = read_metadata(root)
    rate = audio_rate(root, sample_rate)
    rows: dict[str, dict[str, Any]] = {}
    for split in task.splits:
        labels_file = root / f"{split}.json"
        if not labels_file.is_file():
            raise DataError(f"HEAR task folder {root}: split {split!r} of {METADATA} "
                            f"has no {labels_file.name}")
        labels = _json(labels_file)
        if not isinstance(labels, dict):
            raise DataError(f"{labels_file}: expected an object mapping file names to label lists")
        for filename, clip_labels in labels.items():
            if not isinstance(clip_labels, list) or not all(isinstance(x, str) for x in clip_labels):
                raise DataError(f"{labels_file}: {filename!r} has {clip_labels!r}; a scene task gives each "
                                "file a list of labels")
            if task.kind == "multiclass" and len(clip_labels) != 1:
                raise DataError(f"{labels_file}: {filename!r} has {len(clip_labels)} labels; a multiclass "
                                "task gives each file one")
            label = clip_labels[0] if task.kind == "multiclass" else sorted(clip_labels)
            rows[f"{split}/{Path(filename).with_suffix('')}"] = {
                "path": f"{rate}/{split}/{filename}", "label": label, "group": None, "split": split}
    if not rows:
        raise DataError(f"HEAR task folder {root}: its split files list no audio")
    return rows


def hear_defaults(data: dict[str, Any], official: OfficialSplit | None,
                   where: str) -> tuple[dict[str, Any], OfficialSplit | None]:
    """A HEAR task folder declares its kind, classes and splits; the spec may restate the
    kind but not contradict it, and the folder's splits are the official protocol."""
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
