"""The report's statistics on inputs whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from musicbench.report.stats import (
    adjust_p_values,
    mean_ci,
    paired_auc_bootstrap,
    paired_correctness_test,
    pareto_front,
)


def test_mean_ci_is_the_student_t_interval():
    mean, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    half = 2.7764451051977987 * np.sqrt(2.5) / np.sqrt(5)  # t(0.975, 4) * sd / sqrt(n)
    assert mean == 3.0
    assert (lo, hi) == pytest.approx((3 - half, 3 + half))


def test_mean_ci_needs_two_values_and_respects_bounds():
    assert np.isnan(mean_ci(np.array([0.7]))[1])
    _, lo, hi = mean_ci(np.array([0.99, 1.0, 0.9]), bounds=(0.0, 1.0))
    assert hi == 1.0 and lo < 0.96


def test_mcnemar_exact_on_discordant_tracks():
    # A right and B wrong on 20 tracks, never the reverse: p = 2 * 0.5**20.
    diff = np.r_[np.ones(20), np.zeros(80)]
    t = paired_correctness_test(diff)
    assert t.method == "mcnemar-exact"
    assert (t.a_better, t.b_better, t.n) == (20, 0, 100)
    assert t.p_value == pytest.approx(2 * 0.5**20)
    # 3 against 2 discordant tracks is no evidence at all.
    balanced = paired_correctness_test(np.r_[np.ones(3), -np.ones(2), np.zeros(50)])
    assert balanced.p_value == pytest.approx(1.0)
    assert paired_correctness_test(np.zeros(10)).p_value == 1.0


def test_exact_sign_flip_for_seed_averaged_differences():
    # Every track better in one of two seeds: all 30 signs agree, p = 2 * 0.5**30.
    strong = paired_correctness_test(np.full(30, 0.5), seeds=2)
    assert strong.method == "exact sign-flip"
    assert strong.p_value == pytest.approx(2 * 0.5**30)
    symmetric = paired_correctness_test(np.r_[np.full(10, 0.5), np.full(10, -0.5)], seeds=2)
    assert symmetric.p_value == pytest.approx(1.0)
    # One track at +1 and two at -0.5 sum to 0: nothing is as small as |0|'s complement.
    mixed = paired_correctness_test(np.array([1.0, -0.5, -0.5]), seeds=2)
    assert mixed.p_value == pytest.approx(1.0)
    # Weights 2, 1, 1 (in half-seeds), observed +4: only all-positive or all-negative reach |4|.
    assert paired_correctness_test(np.array([1.0, 0.5, 0.5]), seeds=2).p_value == pytest.approx(2 / 8)


def test_paired_auc_bootstrap_separates_a_perfect_from_a_random_ranker():
    rng = np.random.default_rng(1)
    y = (rng.random((80, 3)) < 0.4).astype(float)
    perfect = y + 0.01 * rng.random(y.shape)
    noise = rng.random(y.shape)
    assert paired_auc_bootstrap([(y, perfect, noise)]).p_value < 0.01
    assert paired_auc_bootstrap([(y, perfect, perfect.copy())]).p_value == 1.0


def test_pareto_front():
    score = np.array([0.9, 0.8, 0.7, 0.85, np.nan])
    speed = np.array([10.0, 100.0, 50.0, 5.0, 1000.0])
    # 0.7@50 is beaten by 0.8@100; 0.85@5 by 0.9@10; NaN is never on the front.
    assert pareto_front(score, speed).tolist() == [True, True, False, False, False]


def test_holm_multiplies_the_ith_smallest_p_value_by_m_minus_i_and_stays_monotone():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(adjust_p_values(p, "holm"), [0.03, 0.06, np.nan, 0.06, 0.02])
    assert adjust_p_values(np.array([0.5, 0.6]), "holm").max() == 1.0


def test_benjamini_hochberg_agrees_with_scipy_and_none_keeps_the_raw_values():
    p = np.random.default_rng(0).random(40) ** 3
    np.testing.assert_allclose(adjust_p_values(p, "bh"), false_discovery_control(p, method="bh"))
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)
    with pytest.raises(ValueError, match="holm, bh, none"):
        adjust_p_values(p, "bonferoni")
