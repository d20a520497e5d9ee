"""Few-shot protocols (``PROTOCOL:shots=K[:draws=D]``) and the few-shot curve."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from musicbench.errors import ConfigError
from musicbench.protocol.experiment import resolve_split
from musicbench.protocol.fewshot import DRAWS
from musicbench.protocol.splits import parse_protocol
from musicbench.report.fewshot import few_shot_curve
from musicbench.report.load import load_folders
from musicbench.runner.execute import Runner, RunOptions
from musicbench.runner.suite import Suite
from musicbench.tasks import get_task

BASE = "group-kfold:performer:valid=stratified"  # mini: 4 folds, 6 classes, 6 or more training clips each


@pytest.fixture(scope="module")
def clipset():
    return get_task("synth_genre:mini").clips()


def test_protocols_parse_and_print_back():
    for spec in ("kfold:5:shots=1", "kfold:5:2:shots=10:draws=3", "group-kfold:tonic:shots=5",
                 "group-kfold:performer:valid=stratified:shots=5:draws=2", "official:shots=1"):
        assert str(parse_protocol(spec)) == spec
    p = parse_protocol("kfold:5:shots=5")
    assert (p.kind, p.k, p.shots, p.draws) == ("kfold", 5, 5, DRAWS)
    assert str(parse_protocol(f"kfold:5:shots=5:draws={DRAWS}")) == "kfold:5:shots=5"
    for bad, message in (("kfold:5:shots=0", "shots='0' must be an integer >= 1"),
                         ("kfold:5:shots=x", "shots='x'"), ("kfold:5:shots=2:draws=0", "draws='0'")):
        with pytest.raises(ConfigError, match=message):
            parse_protocol(bad)


def test_draws_hold_k_training_clips_per_class_and_never_a_test_clip(clipset):
    base = resolve_split(BASE, clipset)
    split = resolve_split(f"{BASE}:shots=2:draws=3", clipset)
    assert len(split.folds) == 3 * len(base.folds)
    for fold in split.folds:
        parent = base.folds[fold.index // 3]
        assert fold.test == parent.test and fold.valid == ()
        assert set(fold.train) <= set(parent.train) and not set(fold.train) & set(fold.test)
        counts = Counter(clipset.by_id[t].label for t in fold.train)
        assert set(counts.values()) == {2} and len(counts) == len(clipset.classes)
    draws = [set(f.train) for f in split.folds[:3]]
    assert draws[0] != draws[1] != draws[2]  # the draws of one fold differ


def test_draws_are_deterministic_per_seed_nested_across_k_and_in_the_split_hash(clipset):
    one = resolve_split(f"{BASE}:shots=1", clipset)
    assert one == resolve_split(f"{BASE}:shots=1", clipset)  # same seed: same draws, same hash
    five = resolve_split(f"{BASE}:shots=5", clipset)
    assert all(set(a.train) <= set(b.train) for a, b in zip(one.folds, five.folds, strict=True))
    assert len({one.hash, five.hash, resolve_split(BASE, clipset).hash}) == 3
    other_seed = resolve_split("group-kfold:performer:4:1:valid=stratified:shots=1", clipset)
    assert [f.train for f in other_seed.folds] != [f.train for f in one.folds]


def test_more_shots_than_a_class_has_are_refused_naming_class_and_counts(clipset):
    base = resolve_split(BASE, clipset)
    fewest = min(min(Counter(clipset.by_id[t].label for t in f.train).values()) for f in base.folds)
    resolve_split(f"{BASE}:shots={fewest}", clipset)
    with pytest.raises(ConfigError, match=rf"shots={fewest + 1} exceeds the training clips of some class.*"
                                          rf"fold \d: .*\w+ \({fewest}\).*Use shots <= {fewest}"):
        resolve_split(f"{BASE}:shots={fewest + 1}", clipset)


def test_multilabel_tasks_are_refused():
    tags = get_task("synth_tags:mini").clips()
    with pytest.raises(ConfigError, match="multiclass task; this task is multilabel"):
        resolve_split("kfold:3:shots=1", tags)


def test_cli_refuses_too_many_shots_with_exit_2_before_any_work(tmp_path):
    res = subprocess.run([sys.executable, "-m", "musicbench", "run", "--task", "synth_genre:mini", "--system",
                          "mfcc-stats-svm", "--protocol", "kfold:3:shots=50", "--no-mlflow", "--out", "out"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "shots=50 exceeds the training clips" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_the_curve_has_a_point_per_k_with_intervals_and_the_whole_part_last(tmp_path):
    protocols = (f"{BASE}:shots=1:draws=2", f"{BASE}:shots=3:draws=2", BASE)
    suite = Suite("few-shot-unit", ("synth_genre:mini",), ("mfcc-stats-svm",), protocols, (0,))
    Runner(suite, RunOptions(out=tmp_path, quiet=True, track=False)).run()
    curve = few_shot_curve(load_folders([tmp_path]))
    assert list(curve["shots"].astype("object").where(curve["shots"].notna(), None)) == [1, 3, None]
    assert (curve["base_protocol"] == BASE).all() and (curve["metric"] == "accuracy").all()
    assert list(curve["cells"]) == [8, 8, 4]  # 4 folds x 2 draws, then the 4 folds
    assert ((curve["ci_low"] <= curve["mean"]) & (curve["mean"] <= curve["ci_high"])).all()
    assert curve["mean"].iloc[0] < curve["mean"].iloc[2]  # one clip per class learns less
