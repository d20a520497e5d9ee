"""The cluster family: how well a representation's space is organised, without a head.

A clip's representation is built as a probe builds it (encoder embeddings and/or
hand-crafted front ends, summarised over time); nothing is learnt from the training
labels but their number. At scoring time k-means with k = the number of classes of the
training part partitions the test part's representations (seeded by the cell's seed), and
the partition is scored against the labels by V-measure, NMI and ARI
(``evaluation = "clustering"``), as MAEB's clustering tasks are. Folds and seeds give
the intervals, on the same leaderboard as any system.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from musicbench.errors import DataError
from musicbench.systems.base import RUN, EpochCallback
from musicbench.systems.params import COUNT, OneOf, Param, Params
from musicbench.systems.probe import ENCODER_FRONT_END, ENCODERS, POOLED_SUMMARY, ProbeSystem
from musicbench.tasks import ClipData


class ClusterSystem(ProbeSystem):
    """k-means on the representations of ``encoders`` (preset names) and/or ``features``
    (front ends, with ``deltas``), each summarised by ``summary`` and concatenated; with
    ``standardise`` each dimension is scaled to unit variance over the clips clustered,
    then ``pca_components`` may reduce them. ``n_init`` k-means restarts keep the best
    inertia. Multiclass tasks only: a multilabel clip belongs to several classes, which a
    partition cannot express. ``fit`` reads the training part only for what needs no
    label (a ``vq`` summary's codebook) and how many classes it holds (k; a class absent
    from the data present is not a cluster).
    """

    kinds: ClassVar[tuple[str, ...]] = ("multiclass",)
    evaluation: ClassVar[str | None] = "clustering"
    params = ENCODERS | ENCODER_FRONT_END | POOLED_SUMMARY | Params(
        standardise=Param(True, OneOf(True, False)),
        n_init=Param(10, COUNT),
    ) | RUN

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        self.cards_ = [ex.card().as_dict() for ex in self.encoder_extractors(train.sample_rate)]
        self._fit_codebooks(self.sources(train))
        self.n_classes_ = len(train.classes)
        self.k_ = len(np.unique(train.y))

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        """One-hot cluster memberships: cluster j in column j (columns past k stay 0)."""
        if len(data) < self.k_:
            raise DataError(f"{data.task.ref}: {len(data)} clip(s) to cluster, fewer than the k={self.k_} "
                            "clusters (one per class); use a protocol with larger test parts")
        x = self._summarise(self.sources(data))
        clusters = kmeans(x, self.k_, self.standardise, self.pca_components, self.n_init, self.seed)
        return np.eye(self.k_, self.n_classes_)[clusters]

    def uses_validation(self) -> bool:
        return False

    def training_report(self) -> dict[str, Any]:
        if not hasattr(self, "n_classes_"):
            return {}
        return {"encoders": self.cards_, "k": self.k_}


def kmeans(x: np.ndarray, k: int, standardise: bool = True, pca_components: float | None = None,
           n_init: int = 10, seed: int = 0) -> np.ndarray:
    """Cluster numbers (0 .. k-1) of the rows of ``x``: optionally standardised and reduced
    by PCA, then k-means with ``n_init`` seeded restarts."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = ([StandardScaler()] if standardise else []) + (
        [PCA(pca_components, random_state=seed)] if pca_components else [])
    if steps:
        x = make_pipeline(*steps).fit_transform(x)
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x)
