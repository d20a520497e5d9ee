"""Statistics of the report: intervals over cells, paired tests over tracks, the Pareto front.

Intervals are Student-t intervals over cells (folds x seeds); folds share training data,
so they are a guide to spread, not an exact coverage guarantee. Paired tests work on
per-track predictions of two systems scored on the same test tracks, which is far more
sensitive than comparing fold means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

N_BOOTSTRAP = 1_000


def mean_ci(values: np.ndarray, level: float = 0.95,
            bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval clipped to ``bounds`` (a metric's range).

    The bounds are NaN with fewer than two values.
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, max(m - half, bounds[0]), min(m + half, bounds[1])


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired test of system A against system B over shared test tracks."""

    method: str
    p_value: float
    n: int  # tracks (or cell pairs, for the bootstrap) the test saw
    a_better: int = 0  # tracks A got right and B wrong (McNemar's b; regression: A's error smaller)
    b_better: int = 0  # tracks B got right and A wrong (McNemar's c; regression: B's error smaller)


def _sign_flip_null(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact null distribution of sum(+-w_i) with independent fair signs (w: positive integers).

    Tracks of equal weight w contribute w * (2B - m) with B ~ Binomial(m, 1/2); the
    distribution of the sum is the convolution of those, on an integer grid.
    """
    pmf, low = np.array([1.0]), 0
    for w, m in zip(*np.unique(weights, return_counts=True), strict=True):
        part = np.zeros(2 * w * m + 1)
        part[:: 2 * w] = stats.binom.pmf(np.arange(m + 1), m, 0.5)
        pmf, low = np.convolve(pmf, part), low - w * m
    return np.arange(low, low + len(pmf)), pmf


def paired_correctness_test(diff: np.ndarray, seeds: int = 1) -> PairedTest:
    """Exact test of per-track differences of correctness (A minus B, each in [-1, 1]).

    Each difference is a mean over up to ``seeds`` matched seeds, so a multiple of
    1/lcm(1..seeds). Under the null hypothesis each track's difference is equally likely
    to have either sign; the test is the exact sign-flip permutation test of their sum.
    With one seed the differences are -1, 0 or 1 and this is McNemar's exact test.
    """
    d = np.asarray(diff, dtype=float)
    nz = d[d != 0]
    b, c = int((nz > 0).sum()), int((nz < 0).sum())
    method = "mcnemar-exact" if np.all(np.abs(nz) == 1) else "exact sign-flip"
    if len(nz) == 0:
        return PairedTest(method, 1.0, len(d), 0, 0)
    scale = math.lcm(*range(1, seeds + 1))
    w = np.rint(np.abs(nz) * scale).astype(int)
    observed = abs(int((np.sign(nz) * w).sum()))
    values, pmf = _sign_flip_null(w)
    p = float(pmf[np.abs(values) >= observed].sum())
    return PairedTest(method, min(1.0, p), len(d), b, c)


def paired_error_test(diff: np.ndarray) -> PairedTest:
    """Wilcoxon's signed-rank test of per-track differences of squared error (A minus B,
    regression tasks), two-sided; tracks with equal errors are left out, as in Wilcoxon's
    own treatment of zeros. Ranks make it robust to the few tracks with huge errors that
    an outlying annotation gives, which a t test on squared errors is not."""
    d = np.asarray(diff, dtype=float)
    nz = d[d != 0]
    method = "wilcoxon signed-rank (squared errors)"
    a, b = int((nz < 0).sum()), int((nz > 0).sum())
    if len(nz) == 0:
        return PairedTest(method, 1.0, len(d), 0, 0)
    p = float(stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedTest(method, p, len(d), a, b)


def _macro_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Macro ROC-AUC over tags with both classes present (Mann-Whitney, ties averaged)."""
    pos = y.sum(axis=0)
    neg = y.shape[0] - pos
    usable = (pos > 0) & (neg > 0)
    if not usable.any():
        return np.nan
    ranks = stats.rankdata(s[:, usable], axis=0)
    p, n = pos[usable], neg[usable]
    auc = ((ranks * y[:, usable]).sum(axis=0) - p * (p + 1) / 2) / (p * n)
    return float(auc.mean())


def paired_auc_bootstrap(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                         seed: int = 0) -> PairedTest:
    """Paired bootstrap of the macro ROC-AUC difference (A minus B) for multilabel tasks.

    ``pairs`` holds (y, scores_a, scores_b) per matched cell; tracks are resampled within
    each cell and the difference is averaged over cells. AUC is rank based, so systems
    whose scores live on different scales compare fairly.
    """
    rng = np.random.default_rng(seed)
    diffs = np.empty(N_BOOTSTRAP)
    for i in range(N_BOOTSTRAP):
        per_cell = []
        for y, sa, sb in pairs:
            idx = rng.integers(0, len(y), len(y))
            per_cell.append(_macro_auc(y[idx], sa[idx]) - _macro_auc(y[idx], sb[idx]))
        diffs[i] = np.nanmean(per_cell)
    diffs = diffs[~np.isnan(diffs)]
    if len(diffs) == 0:
        return PairedTest("paired bootstrap (macro ROC-AUC)", np.nan, len(pairs))
    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    p = max(p, 1 / (1 + len(diffs)))
    return PairedTest("paired bootstrap (macro ROC-AUC)", float(p), sum(len(y) for y, _, _ in pairs))


#: corrections for testing many variants against the best at once; Holm controls the
#: family-wise error rate, Benjamini-Hochberg the false-discovery rate
CORRECTIONS = {
    "holm": "Holm's step-down correction (family-wise error rate)",
    "bh": "Benjamini-Hochberg false-discovery-rate control",
    "none": "no correction for multiple comparisons",
}


def adjust_p_values(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """P-values adjusted for testing them together (NaN stays NaN and does not count).

    A test rejects at level alpha when its adjusted p-value is below alpha: with ``holm``
    the chance of any false rejection in the family stays below alpha, with ``bh`` the
    expected share of false rejections among the rejections does.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r}: choose from {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if method == "none" or m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    ranked = p[ok][order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    back = np.empty(m)
    back[order] = np.minimum(adj, 1.0)
    out[ok] = back
    return out


@dataclass(frozen=True)
class RankTest:
    """Friedman's test over blocks with the Nemenyi critical difference (Demsar 2006)."""

    mean_ranks: np.ndarray  # per system, 1 = best
    chi2: float
    p_value: float
    critical_difference: float  # mean ranks further apart than this differ at alpha
    blocks: int


def friedman_nemenyi(scores: np.ndarray, alpha: float = 0.05) -> RankTest:
    """Ranks systems (columns) within each block (rows, higher score better; ties share
    the mean rank), then Friedman's chi-square on the mean ranks (corrected for ties, as
    scipy's ``friedmanchisquare``) and the Nemenyi critical difference
    q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile over sqrt(2)."""
    x = np.asarray(scores, dtype=float)
    n, k = x.shape
    if n < 2 or k < 2 or np.isnan(x).any():
        raise ValueError(f"need a complete table of at least 2 blocks x 2 systems, got {n} x {k}")
    ranks = stats.rankdata(-x, axis=1)
    r = ranks.mean(axis=0)
    chi2 = 12 * n / (k * (k + 1)) * float((r ** 2).sum() - k * (k + 1) ** 2 / 4)
    ties = sum(float((c ** 3 - c).sum()) for c in (np.unique(row, return_counts=True)[1] for row in ranks))
    chi2 = chi2 / (1 - ties / (n * k * (k * k - 1))) if ties < n * k * (k * k - 1) else 0.0
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return RankTest(r, chi2, float(stats.chi2.sf(chi2, k - 1)), q * math.sqrt(k * (k + 1) / (6 * n)), n)


def pareto_front(score: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Boolean mask of points no other point beats on both score and speed (higher is better)."""
    score, speed = np.asarray(score, float), np.asarray(speed, float)
    front = np.zeros(len(score), dtype=bool)
    for i in range(len(score)):
        if np.isnan(score[i]) or np.isnan(speed[i]):
            continue
        dominated = ((score >= score[i]) & (speed >= speed[i])
                     & ((score > score[i]) | (speed > speed[i])))
        front[i] = not dominated.any()
    return front
