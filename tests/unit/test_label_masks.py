"""Label masks in training: an unobserved (clip, tag) pair (OpenMIC-2018) is neither a
positive nor a negative, so it is left out of every training loss, as of every metric.

Every system preset is checked in ``test_systems_contract`` (flipping unobserved labels
changes no score); here, each kind of head on its own, and that a masked fit really
differs from one that counts unobserved pairs as negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from musicbench.systems import build_system
from musicbench.systems.deep.inputs import FeatureBank
from musicbench.systems.deep.trainer import TrainConfig, Trainer
from musicbench.systems.heads import TorchHead
from musicbench.systems.tagwise import TagwiseClassifier
from musicbench.tasks import ClipData

from helpers import multilabel


def _vectors(n: int = 60, tags: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    y = (x[:, :tags] + 0.5 * rng.standard_normal((n, tags)) > 0).astype(np.int64)
    mask = (rng.random((n, tags)) > 0.3).astype(np.int64)
    return x, y, mask


def test_tagwise_heads_fit_each_tag_on_the_clips_that_observed_it():
    x, y, mask = _vectors()
    mask[:, 1] = 1 - y[:, 1]  # tag 1 observed on negatives only
    mask[:, 2] = 0  # tag 2 observed nowhere
    model = TagwiseClassifier(LogisticRegression()).fit(x, y, mask)
    rows = mask[:, 0] == 1
    alone = LogisticRegression().fit(x[rows], y[rows, 0])
    np.testing.assert_allclose(model.predict_proba(x)[:, 0], alone.predict_proba(x)[:, 1])
    np.testing.assert_allclose(model.decision_function(x)[:, 0], alone.decision_function(x))
    assert (model.predict_proba(x)[:, 1:] == 0.0).all()  # a constant score, no crash
    mask[:, 1] = y[:, 1]  # now positives only
    assert (TagwiseClassifier(LogisticRegression()).fit(x, y, mask).predict_proba(x)[:, 1] == 1.0).all()


@pytest.mark.parametrize("hidden", [0, 16])
def test_torch_head_loss_ignores_unobserved_pairs(hidden):
    x, y, mask = _vectors()
    flipped = np.where(mask == 1, y, 1 - y)

    def weights(labels: np.ndarray, m: np.ndarray | None) -> list[torch.Tensor]:
        head = TorchHead(hidden=hidden, lr=1e-2, epochs=50).fit(x, labels, m)
        return list(head.net_.state_dict().values())

    masked = weights(y, mask)
    for a, b in zip(masked, weights(flipped, mask), strict=True):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(masked, weights(flipped, None), strict=True))


def test_deep_trainer_loss_and_validation_ignore_unobserved_pairs():
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((20, 4)).astype(np.float32) for _ in range(8)]
    bank = FeatureBank(clips, torch.device("cpu"))
    y = rng.integers(0, 2, (8, 3))
    mask = (rng.random((8, 3)) > 0.4).astype(np.int64)
    flipped = np.where(mask == 1, y, 1 - y)

    def fit(labels: np.ndarray, m: np.ndarray | None) -> Trainer:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3), torch.nn.AdaptiveMaxPool1d(1),
                                  torch.nn.Flatten(), torch.nn.Linear(8, 3))
        cfg = TrainConfig(chunk=10, eval_hop=5, batch_size=4, max_epochs=3, patience=5)
        trainer = Trainer(net, cfg, torch.device("cpu"), "multilabel", ["a", "b", "c"])
        return trainer.fit(bank, labels, [str(i) for i in range(8)], bank, labels, mask=m, mask_valid=m)

    masked, same = fit(y, mask), fit(flipped, mask)
    for a, b in zip(masked.model.state_dict().values(), same.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in masked.history] == [r["train_loss"] for r in same.history]
    assert [r["valid_loss"] for r in masked.history] == [r["valid_loss"] for r in same.history]
    unmasked = fit(flipped, None)
    assert [r["train_loss"] for r in unmasked.history] != [r["train_loss"] for r in masked.history]


def _hide_positives(part: ClipData, masked: bool) -> tuple[ClipData, np.ndarray]:
    """Half the 'danceable' clips labelled 0, as an annotation that never asked about the
    tag: unobserved (``masked``) or taken at face value as negatives. Returns the part and
    the hidden clips' rows."""
    hidden = np.flatnonzero(part.y[:, -1] == 1)[::2]
    y = part.y.copy()
    y[hidden, -1] = 0
    mask = np.ones_like(y)
    mask[hidden, -1] = 0
    return ClipData(part.task, part.clips, part.classes, part.kind, y, mask=mask if masked else None), hidden


@pytest.mark.parametrize("name, params", [
    ("mfcc-stats-logreg", {}),
    ("mfcc-stats-svm", {}),
    ("cnn1d-small", {"width": 8, "n_blocks": 3, "chunk_seconds": 1.0, "max_epochs": 4, "batch_size": 8}),
])
def test_a_masked_fit_does_not_learn_unobserved_positives_as_negatives(synth_fold, name, params):
    """The hidden clips are really danceable: fitted with the mask they score as danceable
    as the labelled ones; counted as negatives, the fit learns to score them low."""
    train = multilabel(synth_fold[0])
    scores = {}
    for masked in (True, False):
        part, hidden = _hide_positives(train, masked)
        system = build_system(name, **params).fit(part)
        scores[masked] = system.predict_scores(part.without_labels())[hidden, -1]
    assert scores[True].mean() > scores[False].mean()
    assert (scores[True] > scores[False]).mean() >= 0.7  # clip by clip, mostly
