"""The classical family: front end -> summary over time -> (PCA) -> scikit-learn classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from musicbench.errors import ConfigError
from musicbench.features.summaries import SUMMARIES, Codebook, summarise
from musicbench.systems.base import RUN, EpochCallback
from musicbench.systems.frames import FRONT_END, FrameFeatureSystem
from musicbench.systems.params import COUNT, NON_NEGATIVE, POSITIVE, Either, Number, OneOf, Param, Params
from musicbench.systems.tagwise import TagwiseClassifier
from musicbench.tasks import ClipData

CLASSIFIERS = ("svm", "knn", "logreg", "mlp", "ridge", "svr")
CLASSIFICATION_ONLY = ("svm", "logreg")  # heads meaningless for regression targets
REGRESSION_ONLY = ("ridge", "svr")  # regressors, meaningless for classes
KERNELS = ("linear", "poly", "rbf", "sigmoid")

#: how a clip's frames become one vector, and what reduces it
SUMMARY = Params(
    summary=Param("stats", OneOf(*SUMMARIES)),
    dct_coefficients=Param(4, COUNT),
    codebook_size=Param(64, Number(2, integer=True)),
    pca_components=Param(None, Either(OneOf(None), COUNT, Number(0, 1, low_open=True, high_open=True))),
)
#: the scikit-learn head on the summaries and its settings
CLASSIFIER = Params(
    classifier=Param("svm", OneOf(*CLASSIFIERS)),
    C=Param(10.0, POSITIVE),
    kernel=Param("rbf", OneOf(*KERNELS)),
    gamma=Param("scale", Either(OneOf("scale", "auto"), POSITIVE)),
    n_neighbors=Param(5, COUNT),
    mlp_hidden=Param(128, COUNT),
    mlp_alpha=Param(1e-3, NON_NEGATIVE),
    class_weight=Param("balanced", OneOf(None, "balanced")),
)


class ClassicalSystem(FrameFeatureSystem):
    """Hand-crafted features summarised per clip, standardised, then classified.

    ``summary``: ``stats`` (mean and std), ``dct`` (``dct_coefficients`` per dimension),
    ``dct2d``, or ``vq`` (histogram over a ``codebook_size`` K-means codebook fitted on
    training frames). ``pca_components`` (int, or a variance fraction < 1) reduces the
    summary. ``class_weight="balanced"`` reweights rare classes (not for ``mlp``).
    Multilabel tasks fit one classifier per tag, each on the clips that observed the tag
    (``train.mask``). Regression tasks take ``ridge`` (``alpha = 1 / C``), ``svr`` (one
    per target), ``mlp`` or ``knn`` regressors on standardised targets; the task kinds a
    system handles (``kinds``) follow from its ``classifier``.
    """

    params = FRONT_END | SUMMARY | CLASSIFIER | RUN

    @property
    def kinds(self) -> tuple[str, ...]:
        """The task kinds ``classifier`` is meaningful for: the runner refuses the others up front."""
        if self.classifier in REGRESSION_ONLY:
            return ("regression",)
        if self.classifier in CLASSIFICATION_ONLY:
            return ("multiclass", "multilabel")
        return ("multiclass", "multilabel", "regression")

    def _summarise(self, sources: list[Sequence[np.ndarray]]) -> np.ndarray:
        """Each source summarised on its own (their frame rates differ), then side by side."""
        codebooks = getattr(self, "codebooks_", [None] * len(sources))
        parts = [summarise(frames, self.summary, self.dct_coefficients, book)
                 for frames, book in zip(sources, codebooks, strict=True)]
        return parts[0] if len(parts) == 1 else np.hstack(parts)  # one source: no copy

    def _fit_codebooks(self, sources: list[Sequence[np.ndarray]]) -> None:
        """The ``vq`` summary's K-means codebooks, one per source, on training frames."""
        if self.summary == "vq":
            self.codebooks_ = [Codebook(self.codebook_size, self.seed).fit(frames) for frames in sources]

    #: heads trained on every tag at once (with the mask in their loss); the others are
    #: fitted tag by tag on the clips that observed the tag (``TagwiseClassifier``)
    native_multilabel: ClassVar[tuple[str, ...]] = ()

    def _regressor(self, C: float, n_targets: int):
        """The unfitted regressor of ``classifier``, on standardised targets."""
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.preprocessing import StandardScaler

        if self.classifier == "ridge":
            from sklearn.linear_model import Ridge

            reg = Ridge(alpha=1.0 / C)
        elif self.classifier == "svr":
            from sklearn.multioutput import MultiOutputRegressor
            from sklearn.svm import SVR

            reg = SVR(C=C, kernel=self.kernel, gamma=self.gamma)
            reg = reg if n_targets == 1 else MultiOutputRegressor(reg)  # one SVR per target
        elif self.classifier == "knn":
            from sklearn.neighbors import KNeighborsRegressor

            reg = KNeighborsRegressor(n_neighbors=self.n_neighbors)
        else:
            from sklearn.neural_network import MLPRegressor

            reg = MLPRegressor(hidden_layer_sizes=(self.mlp_hidden,), alpha=self.mlp_alpha, max_iter=500,
                               random_state=self.seed)
        return TransformedTargetRegressor(reg, transformer=StandardScaler())

    def _classifier(self, C: float | None = None, n_targets: int = 0):
        """The unfitted classifier (a regressor of ``n_targets`` > 0 targets); ``C`` overrides
        the parameter (a probe's grid)."""
        C = self.C if C is None else C
        if n_targets:
            return self._regressor(C, n_targets)
        cw = self.class_weight
        if self.classifier == "svm":
            from sklearn.svm import SVC

            return SVC(C=C, kernel=self.kernel, gamma=self.gamma, class_weight=cw, random_state=self.seed)
        if self.classifier == "knn":
            from sklearn.neighbors import KNeighborsClassifier

            return KNeighborsClassifier(n_neighbors=self.n_neighbors)
        if self.classifier == "logreg":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=C, class_weight=cw, max_iter=2000)
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier((self.mlp_hidden,), alpha=self.mlp_alpha, max_iter=500, random_state=self.seed)

    def _estimator(self, data: ClipData, **hyper):
        """Standardisation -> (PCA) -> the classifier (regressor) for ``data``'s kind, built
        with ``hyper``."""
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        clf = self._classifier(**hyper, n_targets=len(data.classes) if data.kind == "regression" else 0)
        if data.kind == "multilabel" and self.classifier not in self.native_multilabel:
            clf = TagwiseClassifier(clf)
        steps = [StandardScaler()]
        if self.pca_components:
            steps.append(PCA(self.pca_components, random_state=self.seed))
        return make_pipeline(*steps, clf)

    @staticmethod
    def _fit_estimator(model, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None):
        """Fit a pipeline of ``_estimator``, handing a multilabel ``mask`` to its classifier;
        a single regression target goes in 1-D, as scikit-learn's regressors expect."""
        if y.dtype.kind == "f" and y.shape[1:] == (1,):
            y = y.ravel()
        if mask is None:
            return model.fit(x, y)
        return model.fit(x, y, **{f"{model.steps[-1][0]}__mask": mask})

    def _seen_classes(self, y: np.ndarray, train: ClipData) -> None:
        """Remember the classes present in training (multiclass), refusing a single one."""
        if train.kind != "multiclass":
            return
        self.seen_ = np.unique(y)
        if len(self.seen_) < 2:
            raise ConfigError(f"training part of {train.task.ref} holds a single class")

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        sources, y, mask = self.training_sources(train)
        self._fit_codebooks(sources)
        x = self._summarise(sources)
        self._seen_classes(y, train)
        self.model_ = self._fit_estimator(self._estimator(train), x, y, mask)
        self.n_classes_ = len(train.classes)

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        return self._scores(self.model_, self._summarise(self.sources(data)), data.kind)

    def _scores(self, model, x: np.ndarray, kind: str) -> np.ndarray:
        """A fitted pipeline's scores over every task class (SVM margins or probabilities),
        or its predicted values, one column per target."""
        if kind == "regression":
            return np.asarray(model.predict(x), dtype=np.float64).reshape(len(x), -1)
        if hasattr(model, "decision_function") and self.classifier == "svm":
            scores = model.decision_function(x)
            if scores.ndim == 1:  # two classes: one margin
                scores = np.column_stack([-scores, scores])
            fill = float(scores.min()) - 1.0
        else:
            scores = model.predict_proba(x)
            fill = 0.0
        if kind == "multilabel":
            return np.asarray(scores, dtype=np.float64)
        return self.expand_scores(scores, self.seen_, self.n_classes_, fill)
