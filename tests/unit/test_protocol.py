"""Protocols: deterministic folds, split hashes, group leakage, manifests, metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from musicbench.errors import ConfigError, DataError
from musicbench.protocol.metrics import evaluate
from musicbench.protocol.splits import LeakageWarning, parse_protocol, resolve, split_hash
from musicbench.tasks import ClipSet, get_task
from musicbench.tasks.loader import Clip

from helpers import SHARED, needs_shared


def quiet_resolve(protocol, clipset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        return resolve(protocol, clipset)


def test_kfold_partitions_every_track_once_and_is_stratified(synth_clipset):
    split = quiet_resolve("kfold:4", synth_clipset)
    assert len(split.folds) == 4
    all_ids = sorted(c.track_id for c in synth_clipset.clips)
    tests = sorted(t for f in split.folds for t in f.test)
    assert tests == all_ids
    for f in split.folds:
        assert not set(f.train) & set(f.test) and not set(f.valid) & set(f.test)
        assert not set(f.train) & set(f.valid)
        assert sorted(f.train + f.valid + f.test) == all_ids
        labels = [synth_clipset.by_id[t].label for t in f.test]
        assert len(set(labels)) == len(synth_clipset.classes)  # every class in every test fold


def test_same_seed_same_folds_other_seed_other_hash(synth_clipset):
    a = quiet_resolve("kfold:4", synth_clipset)
    b = quiet_resolve("kfold:4", synth_clipset)
    c = quiet_resolve("kfold:4:7", synth_clipset)
    assert a.folds == b.folds and a.hash == b.hash
    assert c.hash != a.hash


def test_split_hash_changes_iff_track_ids_change(synth_clipset):
    folds = quiet_resolve("kfold:4", synth_clipset).folds
    same = [type(f)(f.index, tuple(reversed(f.train)), f.valid, f.test, f.leakage) for f in folds]
    assert split_hash(same) == split_hash(folds)  # order does not matter
    f0 = folds[0]
    moved = [type(f0)(0, f0.train[1:], f0.valid + f0.train[:1], f0.test)] + list(folds[1:])
    assert split_hash(moved) != split_hash(folds)


def test_kfold_on_grouped_task_warns_about_leakage(synth_clipset):
    with pytest.warns(LeakageWarning, match="group-kfold:performer"):
        split = resolve("kfold:4", synth_clipset)
    assert max(f.leakage for f in split.folds) > 0


def test_group_kfold_leaves_one_group_out_without_leakage(synth_clipset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        split = resolve("group-kfold:performer", synth_clipset)
    groups = sorted({c.group for c in synth_clipset.clips})
    assert len(split.folds) == len(groups)
    for f in split.folds:
        test_groups = {synth_clipset.by_id[t].group for t in f.test}
        train_groups = {synth_clipset.by_id[t].group for t in f.train + f.valid}
        assert len(test_groups) == 1 and not test_groups & train_groups
        assert f.leakage == 0


def _groups(clipset, ids) -> set:
    return {clipset.by_id[t].group for t in ids}


@pytest.mark.parametrize("protocol", ["group-kfold:performer", "group-kfold:performer:2"])
def test_group_kfold_validation_is_group_disjoint_by_default(synth_clipset, protocol):
    split = resolve(protocol, synth_clipset)
    assert split.protocol == protocol
    for f in split.folds:
        valid, train, test = (_groups(synth_clipset, ids) for ids in (f.valid, f.train, f.test))
        assert valid and not valid & train and not valid & test
        assert len(f.valid) >= 0.1 * (len(f.train) + len(f.valid))
    old = resolve(protocol + ":valid=stratified", synth_clipset)
    assert old.protocol == protocol + ":valid=stratified" and old.hash != split.hash
    assert any(_groups(synth_clipset, f.valid) & _groups(synth_clipset, f.train) for f in old.folds)
    assert [f.test for f in old.folds] == [f.test for f in split.folds]  # only validation moved
    assert resolve(protocol + ":valid=group", synth_clipset).hash == split.hash


def test_validation_grammar_round_trips_and_refuses_unknown_kinds():
    old = "group-kfold:tonic:3:7:valid=stratified"
    assert str(parse_protocol(old)) == old
    assert str(parse_protocol("group-kfold:tonic:valid=group")) == "group-kfold:tonic"
    with pytest.raises(ConfigError, match="valid=group or valid=stratified"):
        parse_protocol("group-kfold:tonic:valid=random")
    with pytest.raises(ConfigError, match="kfold"):
        parse_protocol("kfold:5:valid=stratified")


def test_two_groups_leave_no_group_for_validation_and_say_what_to_do(synth_clipset):
    first_two = sorted(_groups(synth_clipset, synth_clipset.by_id))[:2]
    two = [c for c in synth_clipset.clips if c.group in first_two]
    clipset = ClipSet(synth_clipset.task, two, synth_clipset.classes, len(two), [])
    with pytest.raises(DataError, match="group-kfold:performer:valid=stratified"):
        resolve("group-kfold:performer", clipset)


def test_group_kfold_with_k(synth_clipset):
    split = resolve("group-kfold:performer:2", synth_clipset)
    assert len(split.folds) == 2
    assert all(f.leakage == 0 for f in split.folds)


def test_manifest_protocol(tmp_path, synth_clipset):
    ids = sorted(c.track_id for c in synth_clipset.clips)
    (tmp_path / "my_train.txt").write_text("\n".join(ids[:30]))
    (tmp_path / "my_valid.txt").write_text("\n".join(ids[30:38]))
    # paths to audio files are accepted too: matched on the file stem
    (tmp_path / "my_test.txt").write_text("\n".join(f"x/{t}.wav" for t in ids[38:]))
    split = quiet_resolve(f"manifest:{tmp_path}", synth_clipset)
    (fold,) = split.folds
    assert list(fold.train) == ids[:30] and list(fold.valid) == ids[30:38]
    assert list(fold.test) == ids[38:]
    (tmp_path / "my_test.txt").write_text("not_a_track\n")
    with pytest.raises(DataError, match="not_a_track"):
        resolve(f"manifest:{tmp_path}", synth_clipset)


@needs_shared
def test_gtzan_fault_filtered_manifest_maps_onto_the_index():
    task = get_task("gtzan_genre", index_dir=str(SHARED / "indexes"))
    clips = [Clip(t, "", t.split(".")[0].replace("hiphop", "hip-hop")) for t in task.track_ids()]
    clipset = ClipSet(task, clips, list(task.spec.classes), len(clips), [])
    split = resolve(f"manifest:{SHARED / 'splits' / 'gtzan_genre'}", clipset)
    (fold,) = split.folds
    assert (len(fold.train), len(fold.valid), len(fold.test)) == (443, 197, 290)


@needs_shared
def test_mridangam_leave_one_tonic_out():
    task = get_task("mridangam_stroke", str(SHARED / "data"), str(SHARED / "indexes"))
    clipset = task.clips(allow_partial=True)
    split = resolve("group-kfold:tonic", clipset)
    assert len(split.folds) == len({c.group for c in clipset.clips}) == 6
    assert all(f.leakage == 0 for f in split.folds)
    for f in split.folds:  # one whole other tonic validates
        valid = _groups(clipset, f.valid)
        assert len(valid) == 1 and not valid & _groups(clipset, f.train)
    # the hash of this split before validation was group-disjoint (bench/baselines/ci.json of then)
    assert resolve("group-kfold:tonic:valid=stratified", clipset).hash == "d023d49f62952735"
    with pytest.warns(LeakageWarning):
        assert resolve("kfold:5", clipset).folds[0].leakage == 1.0


@pytest.mark.parametrize("bad", ["", "kfold", "kfold:1", "kfold:x", "kfold:5:1:2", "group-kfold",
                                 "group-kfold:tonic:1", "manifest:", "official:1:2", "Leave One Out",
                                 "fault-filtered:1"])
def test_malformed_protocols_list_the_grammar(bad):
    with pytest.raises(ConfigError, match="kfold"):
        parse_protocol(bad)


def test_official_refused_where_the_dataset_has_none(synth_clipset):
    with pytest.raises(ConfigError, match="no official split"):
        resolve("official", synth_clipset)


def test_group_field_must_exist(synth_clipset):
    from musicbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="genre"):
        resolve("group-kfold:no_such_field", synth_clipset)


def test_multiclass_metrics_known_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    m = evaluate("multiclass", y, scores, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert 0 < m["macro_f1"] < 1


def test_multilabel_metrics_drop_single_class_tags():
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.5], [0.8, 0.2, 0.5], [0.1, 0.9, 0.5]])
    m = evaluate("multilabel", y, scores, ["x", "y", "z"])
    assert m["n_tags_dropped"] == 2 and m["n_tags_scored"] == 1  # y all-negative, z all-positive
    assert m["roc_auc_macro"] == 1.0 and m["pr_auc_macro"] == 1.0
    assert set(m["per_tag"]) == {"x"}
    assert m["roc_auc_micro"] == 1.0 and m["pr_auc_micro"] == 1.0


def test_micro_averages_pool_clip_tag_pairs_unlike_macro():
    # tag a is ranked perfectly, tag b backwards: macro averages 1 and 0, micro pools the pairs
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    scores = np.array([[0.9, 0.4], [0.1, 0.3], [0.8, 0.45], [0.2, 0.35]])
    m = evaluate("multilabel", y, scores, ["a", "b"])
    assert m["roc_auc_macro"] == pytest.approx(0.5)
    pairs_y, pairs_s = y.ravel(), scores.ravel()
    pos, neg = pairs_s[pairs_y == 1], pairs_s[pairs_y == 0]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert m["roc_auc_micro"] == pytest.approx(expected) and m["roc_auc_micro"] != m["roc_auc_macro"]


def test_retrieval_metrics_hand_computed():
    # clip 0 ranks a, c, b with positives {a, b}: AP (1/1 + 2/3) / 2; recall@1 1/2
    # clip 1 ranks b, a, c with positive {c}: AP 1/3; recall@1 0
    # clip 2 has no positive tag: left out of the audio -> tag metrics
    y = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    scores = np.array([[0.9, 0.2, 0.5], [0.6, 0.7, 0.1], [0.3, 0.1, 0.05]])
    m = evaluate("multilabel", y, scores, ["a", "b", "c"])
    assert m["map_audio_to_tag"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    assert m["recall_at_1"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall_at_5"] == m["recall_at_10"] == 1.0
    # tag -> audio mAP is the macro PR-AUC: per tag, AP of the clips ranked by its score
    # tag a: its positive clip 0 ranked first: AP 1; b: clip 0 second: 1/2; c: clip 1 second: 1/2
    assert m["pr_auc_macro"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)


def test_audio_to_tag_map_matches_sklearn_ranking_ap_and_honours_the_mask():
    rng = np.random.default_rng(1)
    y = (rng.random((30, 6)) < 0.4).astype(int)
    y[0] = 0  # no positive: left out (sklearn's ranking AP would count it as 1)
    scores = rng.random((30, 6))
    m = evaluate("multilabel", y, scores, list("abcdef"))
    has = y.any(axis=1)
    assert m["map_audio_to_tag"] == pytest.approx(
        skm.label_ranking_average_precision_score(y[has], scores[has]))
    top5 = np.argsort(-scores, axis=1)[:, :5]
    hits = np.take_along_axis(y, top5, axis=1).sum(axis=1)
    assert m["recall_at_5"] == pytest.approx(np.mean(hits[has] / y[has].sum(axis=1)))
    mask = np.ones_like(y)
    mask[:, 5] = 0  # tag f unannotated everywhere: as if it did not exist
    masked = evaluate("multilabel", y, scores, list("abcdef"), mask)
    alone = evaluate("multilabel", y[:, :5], scores[:, :5], list("abcde"))
    for name in ("map_audio_to_tag", "recall_at_1", "recall_at_5"):
        assert masked[name] == pytest.approx(alone[name])


def test_retrieval_metrics_chance_levels():
    from musicbench.protocol.metrics import METRICS

    assert METRICS["recall_at_5"].chance(20) == 0.25 and METRICS["recall_at_10"].chance(5) == 1.0
    rng = np.random.default_rng(2)
    y = (rng.random((2000, 20)) < 0.2).astype(int)
    m = evaluate("multilabel", y, rng.random((2000, 20)), [str(i) for i in range(20)])
    assert m["recall_at_5"] == pytest.approx(0.25, abs=0.02)


def test_scores_of_wrong_shape_or_nan_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        evaluate("multiclass", np.array([0, 1]), np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        evaluate("multiclass", np.array([0, 1]), np.array([[np.nan, 0], [0, 1]]), ["a", "b"])
