"""The density family: one Gaussian mixture per class over frame features."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from musicbench.features.summaries import sample_frames
from musicbench.systems.base import RUN, EpochCallback
from musicbench.systems.frames import FRONT_END, FrameFeatureSystem
from musicbench.systems.params import COUNT, NON_NEGATIVE, OneOf, Param, Params
from musicbench.tasks import ClipData


class GMMSystem(FrameFeatureSystem):
    """A clip goes to the class whose GMM gives its frames the highest summed log-likelihood.

    Frames are standardised with statistics of the training frames; each class's mixture
    is fitted on at most ``max_frames`` of its frames. Scores are the softmax of the
    summed log-likelihoods, i.e. class posteriors under a uniform prior.
    """

    kinds = ("multiclass",)
    params = FRONT_END | Params(
        n_components=Param(8, COUNT),
        covariance_type=Param("diag", OneOf("full", "tied", "diag", "spherical")),
        reg_covar=Param(1e-3, NON_NEGATIVE),
        max_frames=Param(20_000, COUNT),
    ) | RUN

    def _fit(self, train: ClipData, valid: ClipData | None,
             epoch_callback: EpochCallback | None) -> None:
        from sklearn.mixture import GaussianMixture

        (frames,), y, _ = self.training_sources(train)  # multiclass: no mask
        mean, std = _moments(frames)
        self.mean_, self.std_ = mean, std + 1e-8
        rng = np.random.default_rng(self.seed)
        self.models_ = {}
        for c in np.unique(y):
            fc = sample_frames(frames, self.max_frames, rng, rows=np.flatnonzero(y == c))
            self.models_[int(c)] = GaussianMixture(
                n_components=min(self.n_components, len(fc)),
                covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                random_state=self.seed,
            ).fit((fc - self.mean_) / self.std_)
        self.n_classes_ = len(train.classes)

    def _predict_scores(self, data: ClipData) -> np.ndarray:
        loglik = np.full((len(data), self.n_classes_), -np.inf)
        for i, f in enumerate(self.frames(data)):
            z = (f - self.mean_) / self.std_
            for c, gmm in self.models_.items():
                loglik[i, c] = gmm.score_samples(z).sum()
        return softmax(loglik, axis=1)


def _moments(clips) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of all the clips' frames, one clip at a time (Chan et
    al.'s pairwise update of counts, means and squared deviations)."""
    n, mean, m2 = 0, None, None
    for f in clips:
        k, mu = len(f), f.mean(axis=0)
        if mean is None:
            n, mean, m2 = k, mu, ((f - mu) ** 2).sum(axis=0)
            continue
        delta = mu - mean
        m2 = m2 + ((f - mu) ** 2).sum(axis=0) + delta ** 2 * n * k / (n + k)
        mean = mean + delta * k / (n + k)
        n += k
    return mean, np.sqrt(m2 / n)
