"""The density family: one Gaussian mixture per class over frame features."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import softmax

from musicbench.features.summaries import sample_frames
from musicbench.systems.base import EpochCallback
from musicbench.systems.frames import FrameFeatureSystem
from musicbench.systems.params import COUNT, NON_NEGATIVE, OneOf, Rule
from musicbench.tasks import ClipData


class GMMSystem(FrameFeatureSystem):
    """A clip goes to the class whose GMM gives its frames the highest summed log-likelihood.

    Frames are standardised with statistics of the training frames; each class's mixture
    is fitted on at most ``max_frames`` of its frames. Scores are the softmax of the
    summed log-likelihoods, i.e. class posteriors under a uniform prior.
    """

    kinds = ("multiclass",)
    param_rules: ClassVar[dict[str, Rule]] = {
        **FrameFeatureSystem.param_rules,
        "n_components": COUNT,
        "covariance_type": OneOf("full", "tied", "diag", "spherical"),
        "reg_covar": NON_NEGATIVE,
        "max_frames": COUNT,
    }

    def __init__(
        self,
        features=("mfcc",),
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 128,
        n_mfcc: int = 20,
        n_bins: int = 84,
        deltas: int = 1,
        n_components: int = 8,
        covariance_type: str = "diag",
        reg_covar: float = 1e-3,
        max_frames: int = 20_000,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.features = features
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.n_bins = n_bins
        self.deltas = deltas
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_frames = max_frames
        self.seed = seed
        self.device = device

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
