"""Multilabel tasks as the literature runs them: a tag vocabulary chosen on each training
part (``top_k_tags``, ``min_tag_count``), part of the split record; unobserved tags
(OpenMIC-2018) masked out of the metrics; the report saying what each fold left out."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from sklearn import metrics as skm

from musicbench.cli import main
from musicbench.errors import ConfigError
from musicbench.protocol.metrics import evaluate
from musicbench.protocol.splits import resolve
from musicbench.report.build import build
from musicbench.report.load import load_folders
from musicbench.results import ResultStore
from musicbench.tasks import get_task

from helpers import SHARED, needs_shared

GENRES = ["electro", "jazz", "reggae", "rock"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A CSV task of 48 real synthetic clips: tags = genre (12 each), 'loud' (32), 'soft'
    (16) and 'rare' (on 2 clips)."""
    (tmp_path / "datasets").mkdir()
    (tmp_path / "audio").mkdir()
    clips = [c for c in get_task("synth_genre:mini").clips().clips if c.label in GENRES]
    lines = ["path,label"]
    for i, c in enumerate(clips):
        shutil.copy(c.path, tmp_path / "audio" / f"{c.track_id}.wav")
        tags = [c.label, "loud" if i % 3 else "soft"] + (["rare"] if i in (0, 1) else [])
        lines.append(f"audio/{c.track_id}.wav,{'|'.join(tags)}")
    (tmp_path / "tags.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "datasets" / "tags.toml").write_text('source = "csv"\nmanifest = "../tags.csv"\n'
                                                     'kind = "multilabel"\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_vocabulary_is_chosen_on_each_training_part_and_is_part_of_the_split(workspace):
    plain = resolve("kfold:3", get_task("tags").clips())
    clipset = get_task("tags+top_k_tags=4+min_tag_count=3").clips()
    split = resolve("kfold:3", clipset)
    assert [f.test for f in split.folds] == [f.test for f in plain.folds]
    assert split.hash != plain.hash and all(f.vocabulary is None for f in plain.folds)
    for fold in split.folds:
        counts = {t: sum(t in clipset.by_id[i].label for i in fold.train) for t in clipset.classes}
        ranked = sorted((t for t in counts if counts[t] >= 3), key=lambda t: (-counts[t], t))
        assert fold.vocabulary.tags == tuple(sorted(ranked[:4]))
        dropped = fold.vocabulary.dropped
        assert dropped["fewer than 3 positive(s) in the training part"] == ("rare",)
        assert len(dropped["beyond the top 4 by training frequency"]) == 2  # of 4 genres + loud + soft
        part = clipset.part(fold.test, vocabulary=fold.vocabulary)
        assert part.classes == list(fold.vocabulary.tags) and part.y.shape == (len(fold.test), 4)
    with pytest.raises(ConfigError, match="multilabel tasks only"):
        get_task("synth_genre:mini+top_k_tags=5")


def test_top_k_run_end_to_end_and_the_report_says_what_each_fold_dropped(workspace):
    out = workspace / "runs"
    assert main(["run", "--task", "tags+top_k_tags=3+min_tag_count=3", "--system", "mfcc-stats-logreg",
                 "--protocol", "kfold:3", "--out", str(out), "--no-mlflow", "--quiet"]) == 0
    records = ResultStore(out).records()
    assert len(records) == 3 and all(r.ok and len(r.classes) == 3 for r in records)
    for r in records:
        vocab = r.details["vocabulary"]
        assert vocab["kept"] == 3 and sum(len(v) for v in vocab["dropped"].values()) == 4
        assert set(r.details["per_tag"]) <= set(r.classes)
    with open(out / "results.csv") as f:
        assert all(0.0 <= float(row["roc_auc_micro"]) <= 1.0 for row in csv.DictReader(f))
    report = build(load_folders([out]), "tags")
    pf = report["per_fold"]
    assert set(pf["tags"]) == {3} and set(pf["tags_dropped"]) == {4}
    assert pf["dropped_why"].str.contains("1 fewer than 3 positive").all()
    from musicbench.report.registry import sections

    text = "\n".join(n for sec in sections(report, figures=False) for b in sec.blocks for n in b.notes)
    assert "Fold 0: 3 tags scored; left out: 1 fewer than 3 positive(s) in the training part" in text


def test_unobserved_tags_are_left_out_of_every_metric():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    scores = rng.random((40, 3))
    mask = np.ones_like(y)
    mask[:15, 0] = 0  # tag 'a' unannotated on 15 clips
    masked = evaluate("multilabel", y, scores, ["a", "b", "c"], mask)
    assert masked["per_tag"]["a"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[15:, 0], scores[15:, 0]))
    assert masked["per_tag"]["b"] == evaluate("multilabel", y, scores, ["a", "b", "c"])["per_tag"]["b"]
    keep = mask.astype(bool)
    assert masked["roc_auc_micro"] == pytest.approx(skm.roc_auc_score(y[keep], scores[keep]))
    # a tag observed only as negatives is unscorable, not a perfect negative
    mask[:, 2] = 1 - y[:, 2]
    assert "c" not in evaluate("multilabel", y, scores, ["a", "b", "c"], mask)["per_tag"]


@needs_shared
def test_openmic_annotations_mark_the_unobserved_tags_on_mirdata_sample_data():
    root = SHARED / "mirdata_sample"
    task = get_task('openmic2018:sample+classes=["clarinet", "flute", "trumpet", "violin"]',
                    str(root / "resources"), str(root / "indexes"))
    (clip,) = task.clips(allow_partial=True).clips
    assert clip.observed == ("clarinet", "flute", "trumpet")  # annotated (all below the threshold)
    part = task.clips(allow_partial=True).part([clip.track_id])
    assert part.y.tolist() == [[0, 0, 0, 0]] and part.mask.tolist() == [[1, 1, 1, 0]]
    plain = get_task("openmic2018:sample+label_mask=false", str(root / "resources"), str(root / "indexes"))
    assert plain.clips(allow_partial=True).clips[0].observed is None
