"""MagnaTagATune in its own layout, read without a mirdata loader (mirdata has none).

A copy of MTAT is a folder holding ``annotations_final.csv`` (tab-separated, quoted: a
``clip_id`` column, one 0/1 column per tag, an ``mp3_path`` column such as
``f/artist-album-01-title-30-59.mp3``) and the sixteen mp3 folders ``0`` … ``f`` that
the zip parts unpack into. A clip's track id is its ``mp3_path`` without the suffix; its
tags are the columns set to 1 among the task's classes (the top 50 of Won et al. 2020
for ``mtat_top50``), so other tags never reach a system.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from musicbench.errors import DataAbsent, DataError

ANNOTATIONS = "annotations_final.csv"
FOLDERS = tuple("0123456789abcdef")


def check_layout(root: Path) -> Path:
    """The annotation file of an MTAT copy at ``root``; anything else is refused, naming
    what was expected."""
    expected = (f"expected the MagnaTagATune layout: {ANNOTATIONS} and the mp3 folders "
                f"{FOLDERS[0]}/ … {FOLDERS[-1]}/ (point --data-home or the task's root at it)")
    if not root.is_dir():
        raise DataError(f"MagnaTagATune folder {root}: not a folder; {expected}")
    annotations = root / ANNOTATIONS
    if not annotations.is_file():
        raise DataError(f"MagnaTagATune folder {root}: no {ANNOTATIONS}; {expected}")
    if not any((root / f).is_dir() for f in FOLDERS):
        raise DataError(f"MagnaTagATune folder {root}: none of the mp3 folders {FOLDERS[0]}/ … "
                        f"{FOLDERS[-1]}/; {expected}")
    return annotations


def _looks_like_mtat(root: Path) -> bool:
    return (root / ANNOTATIONS).exists() or any((root / f).is_dir() for f in FOLDERS)


def mtat_rows(root: Path, classes: tuple[str, ...] | None) -> dict[str, dict[str, Any]]:
    """Track id -> ``path`` (relative to ``root``), ``label`` (its tags among ``classes``,
    every tag where None) and ``group`` (None: MTAT's annotations name no artist)."""
    annotations = check_layout(root)
    with open(annotations, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = [h.strip() for h in next(reader, [])]
        if "clip_id" not in header or "mp3_path" not in header:
            raise DataError(f"{annotations}: the header must name clip_id, the tags and mp3_path "
                            f"(tab-separated); found {header[:4]}{' …' if len(header) > 4 else ''}")
        path_at = header.index("mp3_path")
        tags = {i: t for i, t in enumerate(header) if t not in ("clip_id", "mp3_path")}
        missing = sorted(set(classes or ()) - set(tags.values()))
        if missing:
            raise DataError(f"{annotations}: tag column(s) {missing} of the task are not in the header")
        wanted = {i: t for i, t in tags.items() if classes is None or t in classes}
        rows: dict[str, dict[str, Any]] = {}
        for line, values in enumerate(reader, start=2):
            if len(values) != len(header):
                raise DataError(f"{annotations}, line {line}: {len(values)} fields, the header has "
                                f"{len(header)}")
            path = values[path_at].strip()
            if not path:  # MTAT lists a few clips with no audio file
                continue
            label = sorted(t for i, t in wanted.items() if values[i].strip() == "1")
            rows[str(Path(path).with_suffix(""))] = {"path": path, "label": label, "group": None,
                                                     "split": None}
    if not rows:
        raise DataError(f"{annotations}: no clips after the header")
    return rows


def mtat_defaults(data: dict[str, Any], official: Any, where: str) -> tuple[dict[str, Any], Any]:
    """A user's copy: one version, as for own files."""
    return {"dataset": "magnatagatune", "version": "local", **data}, official


def open_mtat(task: Any, require_index: bool = True) -> Any:
    """The MTAT copy of ``task`` (a ``Task``) as a dataset: the spec's ``root``, else the
    data home (``ROOT/magnatagatune`` or the folder itself)."""
    from musicbench.tasks.loader import DATA_HOME_ENV, resolve_data_home
    from musicbench.tasks.sources import PlainDataset, spec_path

    spec = task.spec
    root = (spec_path(spec.path, spec.root) if spec.root
            else resolve_data_home(task.data_home_root, spec.dataset))
    # a data home with neither MTAT's file nor its folders holds no copy (a wrong layout
    # that the user pointed at is refused by ``check_layout``)
    if root is None or not Path(root).exists() or not (spec.root or _looks_like_mtat(Path(root))):
        raise DataAbsent(f"task {task.ref} reads your copy of MagnaTagATune: pass --data-home (or set "
                         f"{DATA_HOME_ENV}) to the folder holding {ANNOTATIONS} and the mp3 folders "
                         f"0/ … f/, or to its parent holding {spec.dataset}/")
    return PlainDataset("mtat", Path(root), spec.kind, spec.classes)
