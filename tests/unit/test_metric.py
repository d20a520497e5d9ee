"""The metric family: triplet mining, learning to co-embed audio and tags, and its audio
branch as an encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicbench.protocol.experiment import resolve_split
from musicbench.protocol.metrics import evaluate
from musicbench.systems import build_system
from musicbench.systems.metric import triplet_loss
from musicbench.tasks import get_task


def distances_to_sim(d: list[list[float]]) -> torch.Tensor:
    return 1 - torch.tensor(d, dtype=torch.float64)


# anchor 0: positives at distances 0.3 and 0.6, negatives at 0.5 and 0.9; column 4 is a
# negative at 0.1 that is not observed (masked), so it never counts
# anchor 1: a positive at 0.8 farther than every negative (0.5, 0.7): no semi-hard negative
SIM = distances_to_sim([[0.3, 0.6, 0.5, 0.9, 0.1], [0.8, 0.5, 0.7, 0.95, 0.2]])
POS = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
VALID = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)


@pytest.mark.parametrize("mining, expected", [
    # hard: farthest positive against nearest negative, per anchor
    ("hard", ((0.6 - 0.5 + 0.4) + (0.8 - 0.5 + 0.4)) / 2),
    # semi-hard: nearest negative beyond the positive, else the farthest negative
    ("semi-hard", ((0.3 - 0.5 + 0.4) + (0.6 - 0.9 + 0.4) + (0.8 - 0.7 + 0.4)) / 3),
    # all: every triplet, averaged over the violating ones (anchor 0's (0.3, 0.9) is not)
    ("all", ((0.3 - 0.5 + 0.4) + (0.6 - 0.5 + 0.4) + (0.6 - 0.9 + 0.4)
             + (0.8 - 0.5 + 0.4) + (0.8 - 0.7 + 0.4)) / 5),
])
def test_triplet_loss_hand_computed(mining, expected):
    assert triplet_loss(SIM, POS, VALID, 0.4, mining).item() == pytest.approx(expected)


def test_triplet_loss_without_triplets_is_zero_with_a_gradient():
    sim = SIM.clone().requires_grad_(True)
    loss = triplet_loss(sim, torch.zeros_like(POS), VALID, 0.4, "semi-hard")
    loss.backward()
    assert loss.item() == 0 and sim.grad is not None


@pytest.fixture(scope="module")
def tags_fold():
    clipset = get_task("synth_tags:mini").clips()
    fold = resolve_split("group-kfold:performer", clipset).folds[0]
    return tuple(clipset.part(ids) for ids in (fold.train, fold.valid, fold.test))


@pytest.fixture(scope="module")
def fitted(tags_fold):
    train, valid, _ = tags_fold
    return build_system("metric-small", max_epochs=8).fit(train, valid)


def test_metric_system_learns_to_rank_tags_of_unseen_performers(fitted, tags_fold):
    test = tags_fold[2]
    scores = fitted.predict_scores(test.without_labels())
    assert ((scores >= 0) & (scores <= 1)).all()
    m = evaluate("multilabel", test.y, scores, test.classes)
    assert m["roc_auc_macro"] > 0.6, m
    shuffled = evaluate("multilabel", test.y, np.random.default_rng(0).permutation(scores), test.classes)
    assert m["map_audio_to_tag"] > shuffled["map_audio_to_tag"] + 0.05
    losses = [row["train_loss"] for row in fitted.history_]
    assert losses[-1] < losses[0]
    assert fitted.best_epoch_ == 1 + int(np.argmax([r["valid_map_audio_to_tag"] for r in fitted.history_]))


def test_saved_audio_branch_is_an_encoder_giving_the_system_embeddings(fitted, tags_fold, tmp_path,
                                                                      monkeypatch):
    """The ``metric`` encoder family loads the checkpoint; pooled over a clip's chunks, its
    vectors are the ones the system scores tags with. Both cut non-overlapping chunks here,
    so a 3 s clip is two whole 1.5 s chunks for both (elsewhere the system aligns its last
    chunk to the clip's end, the encoder keeps it on the grid and pads it)."""
    import dataclasses

    from musicbench.encoders import build_encoder
    from musicbench.tasks import ClipData

    test = tags_fold[2]
    path = fitted.save(tmp_path / "metric.pt")
    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "mine.toml").write_text(
        f'family = "metric"\nlicence = "own"\n[params]\ncheckpoint = "{path}"\nhop_seconds = 1.5\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
        encoder = build_encoder("mine")
    audio = torch.from_numpy(np.stack([test.audio(i) for i in range(4)]))
    emb, times = encoder.timestamps(audio)
    assert audio.shape[1] == 3 * encoder.sample_rate and emb.shape[1] == 2
    pooled = torch.nn.functional.normalize(emb.double().mean(dim=1), dim=1)
    first = ClipData(test.task, test.clips[:4], test.classes, test.kind)
    cfg = fitted.trainer_.cfg
    monkeypatch.setattr(fitted.trainer_, "cfg", dataclasses.replace(cfg, eval_hop=cfg.chunk))
    expected = fitted.embed_clips(fitted.bank(first, torch.device("cpu")))
    np.testing.assert_allclose(pooled.numpy(), expected.numpy(), atol=1e-5)
    assert emb.shape[2] == fitted.dim and times.shape == emb.shape[:2]
    assert "metric (cnn1d-small) checkpoint" in encoder.card().source


def test_encoder_branch_needs_no_backbone_and_refuses_augmentation(tags_fold):
    from musicbench.errors import ConfigError

    train, valid, _ = tags_fold
    system = build_system("musicnn-mtt-metric", max_epochs=1)
    augmented = type(train)(train.task, train.clips, train.classes, train.kind, train.y, augment="noise:20")
    with pytest.raises(ConfigError, match="augmentation needs a deep backbone"):
        system.fit(augmented, valid)


def test_backbone_parameters_are_checked_when_built():
    from musicbench.errors import ConfigError, UnknownNameError

    with pytest.raises(ConfigError, match=r"width=-1 must be an integer >= 1"):
        build_system("metric-small", backbone_params={"width": -1})
    with pytest.raises(ConfigError, match=r"lr are the metric system's own parameters"):
        build_system("metric-small", backbone_params={"lr": 0.1})
    with pytest.raises(UnknownNameError, match=r"valid parameters of cnn1d-small"):
        build_system("metric-small", backbone_params={"nope": 1})


def test_unobserved_pairs_take_no_part_in_training():
    """With a label mask, flipping the targets of unobserved (clip, tag) pairs changes
    nothing: they are neither positives nor negatives of any triplet."""
    from musicbench.tasks import ClipData

    clipset = get_task("synth_tags:tiny").clips()
    train = clipset.part([c.track_id for c in clipset.clips])
    mask = (np.random.default_rng(0).random(train.y.shape) < 0.7).astype(np.int64)
    flipped = np.where(mask == 1, train.y, 1 - train.y)

    def scores(y: np.ndarray) -> np.ndarray:
        data = ClipData(train.task, train.clips, train.classes, train.kind, y, mask=mask)
        return build_system("metric-small", max_epochs=1).fit(data).predict_scores(train.without_labels())

    np.testing.assert_array_equal(scores(train.y), scores(flipped))
    unmasked = ClipData(train.task, train.clips, train.classes, train.kind, train.y)
    assert not np.array_equal(scores(train.y), build_system("metric-small", max_epochs=1).fit(unmasked)
                              .predict_scores(train.without_labels()))


def test_synth_tags_is_learnable_by_a_classical_system(tags_fold):
    train, valid, test = tags_fold
    scores = build_system("mfcc-stats-logreg").fit(train, valid).predict_scores(test.without_labels())
    m = evaluate("multilabel", test.y, scores, test.classes)
    assert m["roc_auc_macro"] > 0.65 and m["map_audio_to_tag"] > 0.6, m
