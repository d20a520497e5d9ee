"""A user's own data without a loader: folder and CSV sources, an own mirdata index,
``classes = "from-data"`` and task settings, end to end through ``musicbench run``.

The audio is the synthetic task's real WAV files (generated on first use), laid out as a
user would: class subfolders, a manifest beside the files, a GTZAN-layout folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from musicbench.cli import main
from musicbench.errors import ConfigError, DataError
from musicbench.results import ResultStore
from musicbench.tasks import get_task

GENRES = ["electro", "jazz", "reggae", "rock"]


@pytest.fixture(scope="module")
def clips():
    """The synthetic clips of four genres (12 each, four performers)."""
    return [c for c in get_task("synth_genre:mini").clips().clips if c.label in GENRES]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_folder_source_end_to_end(workspace, clips):
    root = workspace / "my_genres"
    for c in clips:
        (root / c.label).mkdir(parents=True, exist_ok=True)
        shutil.copy(c.path, root / c.label / f"{c.track_id}.wav")
    (root / "rock" / "notes.txt").write_text("not audio: ignored")
    (workspace / "datasets" / "mine.toml").write_text('source = "folder"\nroot = "../my_genres"\n'
                                                      'kind = "multiclass"\n')
    task = get_task("mine")
    clipset = task.clips()
    assert (task.ref, clipset.classes, len(clipset)) == ("mine:local", GENRES, 48)
    assert clipset.by_id["jazz/jazz.p1.0001"].label == "jazz"

    out = workspace / "runs"
    assert main(["run", "--task", "mine", "--system", "mfcc-stats-svm", "--out", str(out),
                 "--no-mlflow", "--quiet"]) == 0
    rows = _rows(out)
    assert len(rows) == 5 and {r["protocol"] for r in rows} == {"kfold:5"}  # the default protocol
    assert all(r["status"] == "ok" and r["n_tracks_used"] == "48" for r in rows)
    assert sum(float(r["accuracy"]) for r in rows) / 5 > 0.5  # chance is 0.25

    (workspace / "datasets" / "nowhere.toml").write_text('source = "folder"\nroot = "missing"\n'
                                                         'kind = "multiclass"\n')
    assert main(["run", "--task", "nowhere", "--system", "mfcc-stats-svm", "--no-mlflow", "--quiet"]) == 2
    (workspace / "datasets" / "tags.toml").write_text('source = "folder"\nroot = "x"\nkind = "multilabel"\n')
    with pytest.raises(ConfigError, match="kind must be 'multiclass'"):
        get_task("tags")


def _manifest(workspace: Path, clips, kind: str = "multiclass", split: bool = False) -> Path:
    """A TSV beside the files: path, label, group (the performer) and, for some files, md5."""
    audio = workspace / "audio"
    audio.mkdir(exist_ok=True)
    lines = ["path\tlabel\tgroup" + ("\tsplit" if split else "") + "\tmd5"]
    for i, c in enumerate(clips):
        shutil.copy(c.path, audio / f"{c.track_id}.wav")
        label = c.label if kind == "multiclass" else f"{c.label}|{'loud' if i % 3 else 'soft'}"
        part = {"p0": "\ttest", "p1": "\tvalid"}.get(c.group, "\ttrain") if split else ""
        md5 = hashlib.md5((audio / f"{c.track_id}.wav").read_bytes()).hexdigest() if i < 5 else ""
        lines.append(f"audio/{c.track_id}.wav\t{label}\t{c.group}{part}\t{md5}")
    path = workspace / "manifest.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_source_with_groups_end_to_end_and_checksums(workspace, clips, capsys):
    _manifest(workspace, clips)
    (workspace / "datasets" / "listed.toml").write_text('source = "csv"\nmanifest = "../manifest.tsv"\n'
                                                        'kind = "multiclass"\n')
    task = get_task("listed")
    assert (task.spec.group, task.spec.default_protocol) == ("group", "group-kfold:group")
    out = workspace / "runs"
    assert main(["run", "--task", "listed", "--system", "mfcc-stats-svm", "--out", str(out),
                 "--no-mlflow", "--quiet"]) == 0
    rows = _rows(out)
    assert len(rows) == 4 and {r["protocol"] for r in rows} == {"group-kfold:group"}  # one per performer
    assert all(r["status"] == "ok" and r["group_leakage"] == "0.0" for r in rows)

    # a corrupted file with an md5 fails its checksum; a listed file that is absent is partial data
    first = sorted((workspace / "audio").iterdir())[0]
    status = task.status()
    assert status["bad_checksum"] == 0 and status["in_index"] == 48
    victim = workspace / "audio" / f"{clips[0].track_id}.wav"
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    assert get_task("listed").status()["bad_checksum_ids"] == [f"audio/{clips[0].track_id}"]
    first.unlink()
    with pytest.raises(DataError, match="--allow-partial"):
        get_task("listed").clips()
    assert len(get_task("listed").clips(allow_partial=True)) == 47


def test_csv_split_column_is_the_official_split_and_multilabel_tags(workspace, clips):
    _manifest(workspace, clips, kind="multilabel", split=True)
    (workspace / "datasets" / "tagged.toml").write_text('source = "csv"\nmanifest = "../manifest.tsv"\n'
                                                        'kind = "multilabel"\n')
    task = get_task("tagged")
    assert task.spec.default_protocol == "official"
    clipset = task.clips()
    assert clipset.classes == sorted([*GENRES, "loud", "soft"])
    out = workspace / "runs"
    assert main(["run", "--task", "tagged", "--system", "mfcc-stats-logreg", "--out", str(out),
                 "--no-mlflow", "--quiet"]) == 0
    (row,) = _rows(out)
    # the official valid part (12 clips) is trained on: logistic regression learns nothing from it
    assert row["status"] == "ok" and row["n_test"] == "12" and row["n_valid"] == "0"
    assert int(row["n_train"]) + 12 == int(row["n_tracks_used"])
    assert 0.5 < float(row["roc_auc_macro"]) <= 1.0


def test_bad_manifests_name_the_line_and_what_is_expected(workspace, clips):
    (workspace / "m.csv").write_text("file,genre\na.wav,rock\n")
    (workspace / "datasets" / "bad.toml").write_text('source = "csv"\nmanifest = "../m.csv"\n'
                                                     'kind = "multiclass"\n')
    with pytest.raises(ConfigError, match="'path' and 'label'"):
        get_task("bad")
    (workspace / "m.csv").write_text("path,label\na.wav,rock\nb.wav,\n")
    with pytest.raises(DataError, match="line 3: 'b.wav' has no label"):
        get_task("bad").clips(allow_partial=True)
    (workspace / "datasets" / "none.toml").write_text('source = "csv"\nkind = "multiclass"\n')
    with pytest.raises(ConfigError, match="needs manifest = PATH"):
        get_task("none")


def test_gtzan_layout_with_an_own_index_and_classes_from_the_data(workspace, clips, capsys):
    """Four genres in the GTZAN layout, one of them not a GTZAN genre: the built-in spec
    refuses it by name; ``+classes=from-data`` with an own index reads it, no copied spec."""
    home = workspace / "mir_datasets"  # a folder of datasets: mir_datasets/gtzan_genre/...
    tracks = {}
    for c in clips:
        genre = "folk" if c.label == "electro" else c.label
        tid = f"{genre}.{len(tracks):05d}"
        rel = f"gtzan_genre/genres/{genre}/{tid}.wav"
        (home / "gtzan_genre" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(c.path, home / "gtzan_genre" / rel)
        tracks[tid] = {"audio": [rel, hashlib.md5(Path(c.path).read_bytes()).hexdigest()],
                       "beats": [None, None], "tempo": [None, None]}
    index = workspace / "my_index.json"
    index.write_text(json.dumps({"version": "1.0", "tracks": tracks}))

    with pytest.raises(DataError, match=r"labels \['folk'\] are not among the classes"):
        get_task(f"gtzan_genre+index={json.dumps(str(index))}", data_home=str(home)).clips()
    ref = f"gtzan_genre+classes=from-data+index={json.dumps(str(index))}"
    task = get_task(ref, data_home=str(home))
    assert task.clips().classes == ["folk", "jazz", "reggae", "rock"]
    assert task.status()["bad_checksum"] == 0

    out = workspace / "runs"
    assert main(["run", "--task", ref, "--system", "mfcc-stats-svm", "--protocol", "kfold:4",
                 "--data-home", str(home), "--out", str(out), "--no-mlflow", "--quiet"]) == 0
    rows = _rows(out)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {r["task"] for r in rows} == {f"gtzan_genre+classes=from-data+index={index}"}  # kept apart
    with pytest.raises(ConfigError, match="valid keys are"):
        get_task("gtzan_genre+clases=from-data")
    assert main(["run", "--task", "gtzan_genre+classes", "--system", "mfcc-stats-svm", "--no-mlflow"]) == 2
    assert next(iter(ResultStore(out).records())).classes == ["folk", "jazz", "reggae", "rock"]
