"""The one interface every system family implements (scikit-learn's estimator style)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from musicbench.errors import ConfigError
from musicbench.features.extractor import Extractor
from musicbench.systems.params import DEVICE, SEED, Param, Params, init_from
from musicbench.tasks import ClipData

#: Called as ``epoch_callback(epoch, valid_score)`` after each epoch of an iterative
#: learner; it may raise (``optuna.TrialPruned``) to stop a poor trial early.
EpochCallback = Callable[[int, float], None]

#: what every family takes last, from the run rather than its preset
RUN = Params(seed=Param(0, SEED), device=Param("cpu", DEVICE))


class System(BaseEstimator):
    """A music classifier. Parameters are plain constructor attributes (``get_params``).

    A family declares ``params`` (groups of ``Param``: default and rule, composed once);
    its ``__init__`` is made from them and stores its arguments untouched.
    ``validate_params()`` checks them against their rules and ``fit`` calls it first, so
    ``clone`` and ``set_params`` never raise and a bad value is reported where it is used.

    ``fit(train, valid=None, epoch_callback=None)`` learns from ``train`` (``valid`` is
    for early stopping and checkpoint selection, never the test fold);
    ``predict_scores(data)`` returns ``[n_clips, n_classes]`` scores: probabilities for
    multiclass, independent per-tag scores for multilabel. ``seed`` makes training
    deterministic on CPU; ``device`` is where tensors live (``cpu``, ``cuda``, ``mps``).
    Families implement ``_fit`` and ``_predict_scores``.
    """

    kinds: tuple[str, ...] = ("multiclass", "multilabel")
    #: the metric kind its scores are evaluated as (``protocol.metrics.KINDS``); None: the
    #: task's own kind. A clustering system's scores are cluster memberships, not classes.
    evaluation: ClassVar[str | None] = None
    params: ClassVar[Params] = RUN

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "params" in cls.__dict__:
            cls.__init__ = init_from(cls.params)

    def key_params(self) -> dict[str, Any]:
        """The parameters that define a cell (not the run's seed and device; not one added
        after keys were first made, at its default)."""
        return {k: v for k, v in self.get_params().items()
                if k not in RUN and not (self.params[k].added and v == self.params[k].default)}

    def validate_params(self) -> None:
        """Raise a ``ConfigError`` naming every invalid parameter and what would be valid."""
        problems = self._param_problems()
        if problems:
            raise ConfigError(f"invalid parameter{'s' if len(problems) > 1 else ''} of "
                              f"{type(self).__name__}: {'; '.join(problems)}")

    def _param_problems(self) -> list[str]:
        """One line per parameter its rule rejects; families add checks across parameters."""
        values = self.get_params(deep=False)
        return [f"{name}={values[name]!r} must be {p.rule}"
                for name, p in self.params.items() if not p.rule.accepts(values[name])]

    def fit(self, train: ClipData, valid: ClipData | None = None,
            epoch_callback: EpochCallback | None = None) -> System:
        """Validate the parameters and the task kind, then learn; returns ``self``."""
        self.validate_params()
        self.check_kind(train)
        with self._runtime():
            self._fit(train, valid, epoch_callback)
        return self

    def predict_scores(self, data: ClipData) -> np.ndarray:
        with self._runtime():
            return self._predict_scores(data)

    def extractors(self, sample_rate: int) -> list[Extractor]:
        """The cached extractors ``fit`` and ``predict_scores`` read frames from, so a run
        can extract every clip its cells need in one parallel pass before they start;
        empty for a system that computes its inputs itself."""
        return []

    def evaluation_kind(self, task_kind: str) -> str:
        """The kind of the metrics its scores on a ``task_kind`` task are evaluated by."""
        return self.evaluation or task_kind

    def training_report(self) -> dict[str, Any]:
        """JSON-safe facts about the last ``fit`` worth recording with a result (a neural
        family's per-epoch history, kept epoch and size); empty where there are none."""
        return {}

    def check_kind(self, data: ClipData) -> None:
        if data.kind not in self.kinds:
            raise ConfigError(
                f"{type(self).__name__} handles {' and '.join(self.kinds)} tasks, not "
                f"{data.kind} ({data.task.ref})"
            )

    def uses_validation(self) -> bool:
        """Whether ``fit`` learns anything from ``valid`` (early stopping, checkpoint or
        hyperparameter choice). The runner fits a system that does not on the training and
        validation parts together, so no labelled clip outside the test part is wasted."""
        return False

    def _runtime(self) -> AbstractContextManager:
        """The context ``fit`` and ``predict_scores`` run in (e.g. thread limits)."""
        return nullcontext()

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        raise NotImplementedError

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        raise NotImplementedError
