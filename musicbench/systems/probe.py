"""The probe family: frozen encoder embeddings -> pooling over time -> standardisation -> head.

A probe is the classical pipeline with learned encoders as its front ends: embeddings
come through the same extractor seam and feature cache, are pooled with the same
summaries, and feed the same scikit-learn heads, plus torch linear and MLP heads.
As in HEAR, the head's hyperparameters are picked on the validation part: any of ``C``,
``lr`` and ``weight_decay`` given as a list is a grid, each point is fitted on ``train``
and scored on ``valid``, and the best is refitted on both. A single value is used as it
is (what ``musicbench tune`` samples).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np

from musicbench.encoders import encoder_names
from musicbench.encoders.extractor import EncoderExtractor
from musicbench.features import FRONTENDS, FeatureCache
from musicbench.features.lazy import ClipFrames, open_frames
from musicbench.features.summaries import POOLINGS, SUMMARIES
from musicbench.protocol.metrics import evaluate, primary_metric
from musicbench.systems.base import RUN, EpochCallback
from musicbench.systems.classical import CLASSIFIER, SUMMARY, ClassicalSystem
from musicbench.systems.frames import FRONT_END
from musicbench.systems.heads import TorchHead, TorchRegressor
from musicbench.systems.params import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    Either,
    ListOf,
    Names,
    OneOf,
    Param,
    Params,
    Rule,
)
from musicbench.systems.tagwise import observed
from musicbench.tasks import ClipData

HEADS = ("logreg", "svm", "linear", "mlp", "knn", "ridge", "svr")
GRID = ("C", "lr", "weight_decay")  # parameters that may be given as a list to select from


class EncoderNames(Rule):
    """Registered encoder presets, read when checked (a workspace may add some)."""

    def _names(self) -> Names:
        return Names(tuple(encoder_names()), empty=True)

    def accepts(self, value: Any) -> bool:
        return self._names().accepts(value)

    def __str__(self) -> str:
        return str(self._names())


def _grid_rule(item: Rule) -> Rule:
    return Either(item, ListOf(item))


#: the encoder presets whose embeddings a representation is built from
ENCODERS = Params(encoders=Param(("aisfx",), EncoderNames()))
#: hand-crafted front ends beside the embeddings: none by default
ENCODER_FRONT_END = FRONT_END.but(features=Param((), Names(tuple(FRONTENDS), empty=True)))
#: the classical summaries, or pooling of embeddings over time (the default)
POOLED_SUMMARY = SUMMARY.but(summary=Param("mean", OneOf(*POOLINGS, *SUMMARIES)))
#: the classical heads with a grid of C, and torch heads (``lr``, ``weight_decay``: grids)
PROBE_HEAD = CLASSIFIER.but(
    classifier=Param("logreg", OneOf(*HEADS)),
    C=Param((0.01, 0.1, 1.0, 10.0, 100.0), _grid_rule(POSITIVE)),
    mlp_hidden=256,
) | Params(
    lr=Param((1e-3, 1e-2), _grid_rule(POSITIVE)),
    weight_decay=Param((1e-4, 1e-2), _grid_rule(NON_NEGATIVE)),
    epochs=Param(300, COUNT),
    loss=Param("mse", OneOf("mse", "huber"), added=True),
)


class ProbeSystem(ClassicalSystem):
    """Probes on frozen embeddings of ``encoders`` (preset names), optionally beside the
    hand-crafted front ends ``features`` (with ``deltas``), each summarised over time by
    ``summary`` (``mean``, ``max``, ``meanmax``, or the classical ``stats``, ``dct``,
    ``dct2d``, ``vq``) and concatenated. Heads: ``logreg``, ``svm``, ``knn``, or torch
    ``linear`` / ``mlp`` (``mlp_hidden`` units, ``epochs`` full-batch AdamW steps);
    multilabel tasks get one sigmoid per tag (or one scikit-learn head per tag), the
    unobserved (clip, tag) pairs of ``mask`` left out of the fit and of the selection;
    regression tasks ``ridge``, ``svr``, ``knn`` or the torch heads with one output per
    target (loss ``loss``: ``mse`` or ``huber``).
    After ``fit``, ``cards_`` holds the encoders' provenance and ``selection_`` the
    validation score of every grid point.
    """

    params = ENCODERS | ENCODER_FRONT_END | POOLED_SUMMARY | PROBE_HEAD | RUN
    native_multilabel: ClassVar[tuple[str, ...]] = ("linear", "mlp")

    def _param_problems(self) -> list[str]:
        problems = super()._param_problems()
        if not problems and not self._names(self.encoders) and not self._names(self.features):
            problems.append("encoders=[] and features=[]: a probe needs at least one encoder or front end")
        return problems

    @staticmethod
    def _names(value) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    def encoder_extractors(self, sample_rate: int) -> list[EncoderExtractor]:
        return [EncoderExtractor(n, sample_rate, self.device) for n in self._names(self.encoders)]

    def extractors(self, sample_rate: int) -> list:
        fronts = self.frontends(sample_rate) if self._names(self.features) else []
        return [*fronts, *self.encoder_extractors(sample_rate)]

    def sources(self, data: ClipData, transform: str | None = None) -> list[ClipFrames]:
        """The clips' frames per source, opened lazily: the hand-crafted front ends (with
        deltas) first, then each encoder's timestamp embeddings."""
        sources = [self.frames(data, transform)] if self._names(self.features) else []
        for ex in self.encoder_extractors(data.sample_rate):
            sources.append(open_frames(data, [ex], FeatureCache(), transform=transform).map(_as_float64))
        return sources

    def _classifier(self, C: float | None = None, lr: float | None = None,
                    weight_decay: float | None = None, n_targets: int = 0):
        if self.classifier in ("linear", "mlp"):
            hidden = self.mlp_hidden if self.classifier == "mlp" else 0
            if n_targets:
                return TorchRegressor(hidden=hidden, lr=lr, weight_decay=weight_decay, epochs=self.epochs,
                                      loss=self.loss, seed=self.seed)
            return TorchHead(hidden=hidden, lr=lr, weight_decay=weight_decay, epochs=self.epochs,
                             class_weight=self.class_weight, seed=self.seed)
        return super()._classifier(C=C, n_targets=n_targets)

    def grid(self) -> list[dict[str, float]]:
        """Every combination of the head's hyperparameters to select from."""
        used = ("lr", "weight_decay") if self.classifier in ("linear", "mlp") else ("C",)
        values = {k: self._as_list(getattr(self, k)) for k in used}
        return [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())]

    @staticmethod
    def _as_list(value) -> list[float]:
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        extractors = self.encoder_extractors(train.sample_rate)
        self.cards_ = [ex.card().as_dict() for ex in extractors]
        sources, y, mask = self.training_sources(train)
        self._fit_codebooks(sources)
        x = self._summarise(sources)
        self.n_classes_ = len(train.classes)
        grid = self.grid()
        self.selection_: list[dict[str, Any]] = []
        chosen = grid[len(grid) // 2]  # without a validation part: the grid's middle
        if len(grid) > 1 and valid is not None:
            metric = primary_metric(train.kind)
            xv = self._summarise(self.sources(valid))
            self._seen_classes(y, train)
            best = -math.inf
            for point in grid:
                model = self._fit_estimator(self._estimator(train, **point), x, y, mask)
                value = float(evaluate(valid.kind, valid.y, self._scores(model, xv, valid.kind),
                                       list(valid.classes), valid.mask)[metric])
                self.selection_.append({**point, f"valid_{metric}": value})
                if value > best:  # the first best; NaN (an undefined AUC) never wins
                    best, chosen = value, point
            if mask is not None or valid.mask is not None:
                mask = np.vstack([observed(y, mask), observed(valid.y, valid.mask)])
            x, y = np.vstack([x, xv]), np.concatenate([y, valid.y])
        self.chosen_ = chosen
        self._seen_classes(y, train)
        self.model_ = self._fit_estimator(self._estimator(train, **chosen), x, y, mask)

    def uses_validation(self) -> bool:
        return len(self.grid()) > 1  # the head's hyperparameters are picked on it

    def training_report(self) -> dict[str, Any]:
        if not hasattr(self, "model_"):
            return {}
        return {"encoders": self.cards_, "chosen": self.chosen_, "selection": self.selection_}


def _as_float64(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64)
