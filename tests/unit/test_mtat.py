"""MagnaTagATune in its own layout: ``annotations_final.csv`` beside the mp3 folders
``0/`` … ``f/``, read without a mirdata loader, run end to end on generated mp3 clips.

The audio is the synthetic task's real clips re-encoded as MP3 (libsndfile's encoder),
each tagged with its genre as an MTAT column, laid out as the zip parts unpack.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicbench.cli import main
from musicbench.errors import DataError
from musicbench.protocol.experiment import open_clips
from musicbench.tasks import get_task
from musicbench.tasks.literature import read_list
from musicbench.tasks.mtat import FOLDERS, mtat_rows

from helpers import REPO

TAGS = ["electro", "jazz", "reggae", "rock"]  # the task's classes: MTAT columns
OTHER = "no voice"                            # a column of the file that is not a class
MTAT_LISTS = REPO / "datasets" / "splits" / "mtat_top50" / "won2020"


def _write_annotations(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Tab-separated with every field quoted, as MTAT's file is."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def mtat(tmp_path_factory):
    """A copy of MTAT's layout: 48 mp3 clips (12 per genre) spread over the 16 folders,
    one clip with none of the task's tags, one annotation row with no audio file."""
    root = tmp_path_factory.mktemp("mtat") / "magnatagatune"
    clips = [c for c in get_task("synth_genre:mini").clips().clips if c.label in TAGS]
    header = ["clip_id", OTHER, *TAGS, "mp3_path"]
    rows, ids = [], []
    for i, c in enumerate(clips):
        folder = FOLDERS[i % len(FOLDERS)]
        rel = f"{folder}/artist{i % 4}-album-{i:02d}-{c.label}_song-30-59.mp3"
        (root / folder).mkdir(parents=True, exist_ok=True)
        audio, sr = sf.read(c.path, dtype="float32")
        sf.write(root / rel, audio, sr, format="MP3")
        rows.append([str(i), str(i % 2), *("1" if t == c.label else "0" for t in TAGS), rel])
        ids.append(rel[:-4])
    rows.append([str(len(rows)), "1", "0", "0", "0", "0", "f/untagged-clip-00-none-0-29.mp3"])
    quiet = np.zeros(22050, np.float32) + 0.01
    sf.write(root / "f/untagged-clip-00-none-0-29.mp3", quiet, 22050, format="MP3")
    rows.append([str(len(rows)), "0", "1", "0", "0", "0", ""])  # MTAT lists a few clips with no audio
    _write_annotations(root / "annotations_final.csv", header, rows)
    return root, ids, [c.label for c in clips]


@pytest.fixture
def workspace(tmp_path, monkeypatch, mtat):
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _spec(workspace: Path, root: Path, extra: str = "") -> None:
    """The task ``my_mtat`` on ``root``; a run reads it afresh (clip sets are memoised per process)."""
    open_clips.cache_clear()
    (workspace / "datasets" / "my_mtat.toml").write_text(
        f'source = "mtat"\nroot = "{root}"\nkind = "multilabel"\nclasses = {TAGS!r}\n'
        f'default_protocol = "kfold:4"\n{extra}'.replace("'", '"'))


def _lists(folder: Path, parts: dict[str, list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for part, entries in parts.items():
        (folder / f"{part}.txt").write_text("# generated for a test\n" + "".join(f"{e}\n" for e in entries))


def test_rows_read_the_layout_with_tags_among_the_classes(mtat):
    root, ids, labels = mtat
    rows = mtat_rows(root, tuple(TAGS))
    assert sorted(rows) == sorted([*ids, "f/untagged-clip-00-none-0-29"])  # the row with no audio is left out
    # 'no voice' never reaches a label
    assert all(rows[i]["label"] == [g] for i, g in zip(ids, labels, strict=True))
    assert rows["f/untagged-clip-00-none-0-29"]["label"] == []
    assert rows[ids[0]]["path"].endswith(".mp3") and (root / rows[ids[0]]["path"]).is_file()
    assert set(mtat_rows(root, None)[ids[1]]["label"]) == {OTHER, labels[1]}  # every tag where no classes


def test_mtat_task_runs_end_to_end_on_mp3_with_the_tagging_metrics(workspace, mtat):
    root, ids, labels = mtat
    _spec(workspace, root)
    clipset = get_task("my_mtat").clips()
    assert len(clipset) == len(ids) + 1 and clipset.classes == TAGS
    lists = workspace / "lists"
    by_tag = {t: [i for i, g in zip(ids, labels, strict=True) if g == t] for t in TAGS}
    # paths, as the lists of the papers
    _lists(lists, {"train": [f"{i}.mp3" for t in TAGS for i in by_tag[t][:6]],
                   "valid": [i for t in TAGS for i in by_tag[t][6:8]],
                   "test": [i for t in TAGS for i in by_tag[t][8:]]})
    _spec(workspace, root, '[protocols.mine]\nlists = "../lists"\n')
    out = workspace / "runs"
    assert main(["run", "--task", "my_mtat", "--protocol", "mine", "--system", "mfcc-stats-logreg",
                 "--out", str(out), "--no-mlflow", "--quiet"]) == 0
    with open(out / "results.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["status"], row["protocol"], row["n_test"]) == ("ok", "mine", "16")
    assert float(row["roc_auc_macro"]) > 0.75 and float(row["pr_auc_macro"]) > 0.5  # chance: 0.5 and 0.25


def test_a_wrong_layout_is_refused_before_any_work(workspace, mtat, tmp_path, capsys):
    root, _, _ = mtat
    bad = tmp_path / "bad"
    cases = []
    (bad / "no_csv" / "0").mkdir(parents=True)
    cases.append((bad / "no_csv", "no annotations_final.csv"))
    (bad / "no_folders").mkdir()
    _write_annotations(bad / "no_folders" / "annotations_final.csv", ["clip_id", *TAGS, "mp3_path"], [])
    cases.append((bad / "no_folders", r"none of the mp3 folders 0/ … f/"))
    (bad / "bad_header" / "a").mkdir(parents=True)
    _write_annotations(bad / "bad_header" / "annotations_final.csv", ["id", "path"], [["1", "a/x.mp3"]])
    cases.append((bad / "bad_header", "the header must name clip_id"))
    (bad / "few_tags" / "a").mkdir(parents=True)
    _write_annotations(bad / "few_tags" / "annotations_final.csv", ["clip_id", "rock", "mp3_path"],
                       [["1", "1", "a/x.mp3"]])
    cases.append((bad / "few_tags", r"tag column\(s\) \['electro', 'jazz', 'reggae'\]"))
    for folder, message in cases:
        _spec(workspace, folder)
        capsys.readouterr()
        assert main(["run", "--task", "my_mtat", "--system", "mfcc-stats-logreg", "--no-mlflow",
                     "--quiet", "--out", str(tmp_path / "never")]) == 2, folder
        err = capsys.readouterr().err
        assert str(folder) in err and re.search(message, err), err
    assert not (tmp_path / "never").exists()  # refused before any work


def test_lists_naming_clips_absent_from_the_annotations_are_refused(workspace, mtat):
    root, ids, _ = mtat
    lists = workspace / "lists"
    _lists(lists, {"train": ids[:20], "valid": ids[20:30], "test": [*ids[30:], "0/never-annotated-1-30.mp3"]})
    _spec(workspace, root, '[protocols.mine]\nlists = "../lists"\n')
    with pytest.raises(DataError, match=r"test\.txt: 0/never-annotated-1-30\.mp3"):
        from musicbench.protocol.splits import resolve

        resolve("mine", get_task("my_mtat").clips())
    assert main(["run", "--task", "my_mtat", "--protocol", "mine", "--system", "mfcc-stats-logreg",
                 "--no-mlflow", "--quiet"]) == 2


def test_missing_copy_names_where_it_was_looked_for(workspace, tmp_path, capsys):
    assert main(["run", "--task", "mtat_top50", "--system", "mfcc-stats-logreg", "--no-mlflow", "--quiet",
                 "--data-home", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "annotations_final.csv" in err and "--data-home" in err


def test_shipped_top50_lists_and_tags_of_won_2020():
    tags = read_list(MTAT_LISTS.parent / "tags.txt")
    assert len(tags) == 50 == len(set(tags)) and {"guitar", "classical", "techno"} <= set(tags)
    assert list(get_task("mtat_top50").spec.classes) == tags  # the reference code's column order
    sizes = {p: len(read_list(MTAT_LISTS / f"{p}.txt")) for p in ("train", "valid", "test")}
    assert sizes == {"train": 15244, "valid": 1529, "test": 4332}
    entries = [e for p in sizes for e in read_list(MTAT_LISTS / f"{p}.txt")]
    assert len(set(entries)) == sum(sizes.values())  # no clip in two parts
    assert all(e[0] in FOLDERS and e[1] == "/" and e.endswith(".mp3") for e in entries)
    assert any("minzwon/sota-music-tagging-models" in line
               for line in (MTAT_LISTS / "train.txt").read_text().splitlines()[:6])


def test_shipped_top50_protocol_resolves_on_a_copy_in_mtats_layout(tmp_path):
    """Every listed clip annotated, audio for a few: the shipped protocol cuts the copy as
    the paper does, and the clips outside the lists (none of the 50 tags) stay out."""
    spec = get_task("mtat_top50").spec
    parts = {p: read_list(MTAT_LISTS / f"{p}.txt") for p in ("train", "valid", "test")}
    root = tmp_path / "magnatagatune"
    header = ["clip_id", *spec.classes, "mp3_path"]
    listed = [e for p in parts.values() for e in p]
    rows = [[str(i), *("1" if (i + j) % 7 == 0 else "0" for j in range(len(spec.classes))), e]
            for i, e in enumerate(listed)]
    rows.append([str(len(rows)), *("0" for _ in spec.classes), "0/outside-the-lists-0-29.mp3"])
    root.mkdir()
    _write_annotations(root / "annotations_final.csv", header, rows)
    on_disk = [parts["train"][0], parts["train"][1], parts["valid"][0], parts["test"][0],
               "0/outside-the-lists-0-29.mp3"]
    for rel in on_disk:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, np.full(8000, 0.01, np.float32), 16000, format="MP3")
    from musicbench.protocol.splits import resolve

    task = get_task("mtat_top50", str(root))
    assert task.spec.default_protocol == "won2020"
    clipset = task.clips(allow_partial=True)
    (fold,) = resolve("won2020", clipset).folds
    assert {*fold.train, *fold.valid, *fold.test} == {e[:-4] for e in on_disk[:4]}
    assert len(task.track_ids()) == len(listed) + 1
