"""HEAR 2021 task folders as a source: the layout hear-preprocess writes, read as HEAR's
kit reads it, run end to end through ``musicbench run``.

The audio is the synthetic task's real clips, written into a k-fold multiclass task
(22.05 kHz and 16 kHz folders) and a train/valid/test multilabel task.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from musicbench.cli import main
from musicbench.errors import ConfigError, DataError
from musicbench.protocol.experiment import open_clips
from musicbench.protocol.splits import resolve
from musicbench.tasks import get_task

FOLDS = ("fold00", "fold01", "fold02")


def _task_folder(root: Path, clips, splits: dict[str, list], kind: str, labels_of, rates=(22050,),
                 embedding_type: str = "scene") -> None:
    root.mkdir(parents=True)
    vocab = sorted({t for c in clips for t in labels_of(c)})
    split_mode = "trainvaltest" if "train" in splits else "new_split_kfold"
    (root / "task_metadata.json").write_text(json.dumps({
        "task_name": root.name, "version": "test", "embedding_type": embedding_type,
        "prediction_type": kind, "split_mode": split_mode, "splits": list(splits),
        "sample_duration": 3.0, "evaluation": ["top1_acc"]}))
    with open(root / "labelvocabulary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["idx", "label"])
        w.writerows(enumerate(vocab))
    for split, members in splits.items():
        (root / f"{split}.json").write_text(json.dumps({f"{c.track_id}.wav": labels_of(c) for c in members}))
        for rate in rates:
            (root / str(rate) / split).mkdir(parents=True)
            for c in members:
                audio, sr = sf.read(c.path, dtype="float32")
                if rate != sr:
                    audio = resample_poly(audio, rate // 50, sr // 50).astype(np.float32)
                sf.write(root / str(rate) / split / f"{c.track_id}.wav", audio, rate)


@pytest.fixture(scope="module")
def clips():
    return get_task("synth_genre:mini").clips().clips


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    open_clips.cache_clear()
    return tmp_path


def _parity(clip) -> str:
    return "even" if int(clip.track_id[-1]) % 2 == 0 else "odd"


def _spec(workspace: Path, name: str, root: str, extra: str = "") -> None:
    (workspace / "datasets" / f"{name}.toml").write_text(f'source = "hear"\nroot = "{root}"\n{extra}')


def test_kfold_hear_task_runs_end_to_end_with_heareval_folds(workspace, clips):
    folds = {f: [c for i, c in enumerate(clips) if i % 3 == k] for k, f in enumerate(FOLDS)}
    _task_folder(workspace / "genre-v1-full", clips, folds, "multiclass", lambda c: [c.label],
                 rates=(16000, 22050))
    _spec(workspace, "hear_genre", "../genre-v1-full")
    task = get_task("hear_genre")
    spec = task.spec
    labels = tuple(sorted({c.label for c in clips}))
    assert (spec.kind, spec.classes, spec.default_protocol) == ("multiclass", labels,
                                                               "official")
    clipset = task.clips()
    assert len(clipset) == len(clips) and clipset.by_id[f"fold01/{clips[1].track_id}"].label == clips[1].label
    split = resolve("official", clipset)
    for i, fold in enumerate(split.folds):  # heareval: fold i tests, fold i+1 validates, the rest trains
        test, valid = FOLDS[i], FOLDS[(i + 1) % 3]
        assert {t.split("/")[0] for t in fold.test} == {test}
        assert {t.split("/")[0] for t in fold.valid} == {valid}
        assert {t.split("/")[0] for t in fold.train} == set(FOLDS) - {test, valid}
    assert task.dataset.track(fold.test[0]).audio_path.split("/")[-3] == "22050"  # the task's own rate
    _spec(workspace, "hear_genre16", "../genre-v1-full", "[clip]\nsample_rate = 16000\n")
    assert get_task("hear_genre16").dataset.track(fold.test[0]).audio_path.split("/")[-3] == "16000"

    out = workspace / "runs"
    assert main(["run", "--task", "hear_genre", "--system", "mfcc-stats-logreg", "--out", str(out),
                 "--no-mlflow", "--quiet"]) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {r["protocol"] for r in rows} == {"official"}
    assert all(r["status"] == "ok" and r["n_test"] == "24" for r in rows)
    assert np.mean([float(r["accuracy"]) for r in rows]) > 0.5  # chance is 1/6
    assert "hear_genre:local — official" in (out / "leaderboard.md").read_text()


def test_trainvaltest_multilabel_hear_task(workspace, clips):
    parts = {"train": clips[0::3] + clips[1::3][:12], "valid": clips[1::3][12:], "test": clips[2::3]}
    _task_folder(workspace / "tags", clips, parts, "multilabel",
                 lambda c: [c.label, _parity(c)])
    _spec(workspace, "hear_tags", "../tags", 'kind = "multilabel"\n')
    clipset = get_task("hear_tags").clips()
    (fold,) = resolve("official", clipset).folds
    assert (len(fold.train), len(fold.valid), len(fold.test)) == (36, 12, 24)
    for c in parts["test"]:
        assert set(clipset.by_id[f"test/{c.track_id}"].label) == {c.label, _parity(c)}


def test_bad_hear_folders_are_refused_before_any_work(workspace, clips, capsys):
    small = {"train": clips[:4], "valid": clips[4:6], "test": clips[6:8]}
    _task_folder(workspace / "events", clips, small, "multilabel", lambda c: [c.label],
                 embedding_type="event")
    _task_folder(workspace / "ok", clips, small, "multiclass", lambda c: [c.label])
    (workspace / "no_meta").mkdir()
    cases = [("events", "", "event tasks, with timestamped labels, are not supported"),
             ("no_meta", "", "no task_metadata.json"),
             ("ok", 'kind = "multilabel"\n', "kind 'multilabel', but the HEAR task is 'multiclass'")]
    for folder, extra, message in cases:
        _spec(workspace, "bad", f"../{folder}", extra)
        with pytest.raises((ConfigError, DataError), match=re.escape(message)):
            get_task("bad").clips()
        capsys.readouterr()
        assert main(["run", "--task", "bad", "--system", "mfcc-stats-logreg", "--no-mlflow", "--quiet",
                     "--out", str(workspace / "never")]) == 2
        assert message in capsys.readouterr().err
    (workspace / "ok" / "test.json").write_text("{not json")
    _spec(workspace, "bad", "../ok")
    with pytest.raises(DataError, match=r"test\.json: not valid JSON"):
        get_task("bad").clips()
    (workspace / "ok" / "test.json").write_text(json.dumps({"x.wav": ["rock", "jazz"]}))
    _spec(workspace, "bad", "../ok")
    with pytest.raises(DataError,
                       match=r"test\.json: 'x\.wav' has 2 labels; a multiclass task gives each file one"):
        get_task("bad").clips()
    assert not (workspace / "never").exists()
