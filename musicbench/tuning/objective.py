"""The tuning objective: the mean validation score over folds, never touching a test part.

Each fold contributes its own train and valid parts (a stratified inner hold-out of
train where the protocol gives no valid part). The objective only ever builds
``ClipData`` from those ids, so no test clip's audio is read while tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from musicbench.protocol.experiment import fit, score
from musicbench.protocol.metrics import primary_metric
from musicbench.protocol.splits import VALID_FRACTION, Split, holdout
from musicbench.systems import build_system
from musicbench.tasks import ClipData, ClipSet
from musicbench.tuning.space import SearchSpace


@dataclass(frozen=True)
class TuningFold:
    index: int
    train: ClipData
    valid: ClipData


def tuning_folds(clipset: ClipSet, split: Split, n_folds: int | None, seed: int) -> list[TuningFold]:
    """The train and valid parts of the first ``n_folds`` folds (all when None)."""
    out = []
    for fold in split.folds[:n_folds]:
        train, valid = list(fold.train), list(fold.valid)
        if not valid:
            train, valid = holdout(clipset, train, VALID_FRACTION, seed + fold.index)
        out.append(TuningFold(fold.index, clipset.part(train, vocabulary=fold.vocabulary),
                              clipset.part(valid, vocabulary=fold.vocabulary)))
    return out


class EpochReporter:
    """``System.epoch_callback`` of a trial: reports each epoch's validation score to the
    pruner and stops the trial when the pruner says so."""

    def __init__(self, trial: Any):
        self.trial = trial

    def __call__(self, epoch: int, valid_score: float) -> None:
        import optuna

        self.trial.report(float(valid_score), int(epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (valid score {valid_score:.4f})")


class Objective:
    """Samples a trial's parameters, fits one system per fold, returns the mean valid score.

    Pruning watches the first fold's learning curve only: there every trial's epoch n is
    the same amount of training on the same data, so the pruner compares like with like.
    A trial that survives it runs its remaining folds in full.
    """

    def __init__(self, system: str, space: SearchSpace, folds: list[TuningFold], seed: int,
                 device: str = "cpu", fixed: dict[str, Any] | None = None):
        self.system, self.space, self.folds = system, space, folds
        self.seed, self.device, self.fixed = seed, device, dict(fixed or {})
        built = build_system(system, device=device, **self.fixed)  # a cluster family: its V-measure
        self.metric = primary_metric(built.evaluation_kind(folds[0].train.kind))

    def __call__(self, trial: Any) -> float:
        try:
            return self._run(trial)
        except Exception as exc:
            import optuna

            if not isinstance(exc, optuna.TrialPruned):
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            raise

    def _run(self, trial: Any) -> float:
        params = self.space.sample(trial)
        scores: dict[str, float] = {}
        for position, fold in enumerate(self.folds):
            est = build_system(self.system, seed=self.seed, device=self.device,
                               **{**self.fixed, **params})
            fit(est, fold.train, fold.valid, self.seed, EpochReporter(trial) if position == 0 else None)
            scores[str(fold.index)] = self.score(est, fold.valid)
            trial.set_user_attr("fold_scores", scores)
        return float(np.mean(list(scores.values())))

    def score(self, est: Any, valid: ClipData) -> float:
        return float(score(est, valid).result[self.metric])
