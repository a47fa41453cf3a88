"""search/stats.py on fixed numbers, against scipy and against the formulas it documents."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from search import stats

A = [91.2, 89.5, 90.1, 87.3, 92.0, 88.8, 90.6, 86.9, 89.9, 91.5]
B = [90.7, 89.9, 89.2, 87.9, 91.1, 88.1, 90.9, 87.5, 89.0, 92.3]


def test_tau_and_rho_are_scipys():
    assert stats.kendall_tau(A, B) == pytest.approx(sp.kendalltau(A, B).statistic)
    assert stats.spearman_rho(A, B) == pytest.approx(sp.spearmanr(A, B).statistic)
    assert stats.kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(2 / 3)


def test_bootstrap_interval_is_scipys_percentile_interval_over_paired_rows():
    a, b = np.array(A), np.array(B)
    lo, hi = stats.bootstrap_interval(stats.kendall_tau, a, b, n_boot=3000, seed=1)
    ref = sp.bootstrap((a, b), lambda x, y: sp.kendalltau(x, y).statistic, paired=True, vectorized=False,
                       n_resamples=3000, method="percentile", rng=np.random.default_rng(1)).confidence_interval
    assert lo <= stats.kendall_tau(a, b) <= hi
    # different draws, same estimator: the ends agree to within the resampling error
    assert lo == pytest.approx(ref.low, abs=0.08) and hi == pytest.approx(ref.high, abs=0.08)


def test_bootstrap_is_seeded_and_skips_resamples_that_cannot_rank():
    a, b = np.array(A), np.array(B)
    assert stats.bootstrap_interval(stats.kendall_tau, a, b, seed=3) == stats.bootstrap_interval(
        stats.kendall_tau, a, b, seed=3)
    assert all(math.isnan(x) for x in stats.bootstrap_interval(stats.kendall_tau, [1.0, 2.0], [1.0, 2.0]))


def test_prediction_interval_is_mean_plus_t_sd_root_of_one_over_k_plus_one_over_n():
    xs = [0.60, 0.66, 0.71]
    lo, hi = stats.prediction_interval(xs, k=2)
    half = sp.t.ppf(0.975, 2) * np.std(xs, ddof=1) * math.sqrt(1 / 2 + 1 / 3)
    assert (lo, hi) == pytest.approx((np.mean(xs) - half, np.mean(xs) + half))


def test_spearman_brown_and_the_gaussian_tau_link():
    assert stats.spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert stats.spearman_brown(0.5, 1) == pytest.approx(0.5)
    assert stats.spearman_brown(-0.1, 4) == 0.0
    assert stats.tau_of_reliability(stats.reliability_of_tau(0.43)) == pytest.approx(0.43)
    assert stats.tau_of_reliability(1.0) == pytest.approx(1.0)


def test_best_fraction_ranks_by_the_seed_mean_not_by_one_seed():
    # seed 0 alone would pick row 0 and row 1; the means pick rows 2 and 3
    runs = [[95.0, 80.0], [94.0, 81.0], [90.0, 90.0], [89.0, 90.5], [70.0, 70.0], [71.0, 69.0], [60, 61], [50, 52]]
    assert stats.best_fraction(runs, 0.25).tolist() == [2, 3]
    assert stats.best_fraction(runs, 0.5).tolist() == [2, 3, 0, 1]
    assert len(stats.best_fraction(np.zeros((21, 2)), 0.5)) == 10  # the floor


def test_seed_sd_arch_sd_and_binomial_sd_are_the_documented_formulas():
    a, b = np.array(A), np.array(B)
    runs = np.column_stack([a, b])
    assert stats.seed_sd(runs) == pytest.approx(math.sqrt(np.mean((a - b) ** 2) / 2))
    assert stats.arch_sd(runs) == pytest.approx(np.std((a + b) / 2, ddof=1))
    assert stats.true_arch_var(runs) == pytest.approx(stats.arch_sd(runs) ** 2 - stats.seed_sd(runs) ** 2 / 2)
    assert stats.true_arch_var([[1.0, 3.0], [3.0, 1.0]]) == 0.0  # all noise
    assert stats.binomial_sd(0.9, 5000) == pytest.approx(0.4243, abs=1e-4)  # the 0.42 points


def test_paired_gain_is_the_difference_of_mean_taus_with_a_paired_interval():
    target = np.array(A)
    good, bad = np.array(B), np.array(B[::-1])
    g, lo, hi = stats.paired_gain([good], [bad], target, n_boot=500)
    assert g == pytest.approx(stats.kendall_tau(good, target) - stats.kendall_tau(bad, target))
    assert lo <= g <= hi and lo > 0


def test_tau_ceiling_of_a_noisy_reference():
    # runs that agree perfectly leave room for tau 1; independent runs for 0; between, above their agreement
    assert stats.tau_ceiling(1.0) == pytest.approx(1.0) and stats.tau_ceiling(0.0) == 0.0
    assert stats.tau_ceiling(-0.2) == 0.0
    assert stats.tau_ceiling(0.65) == pytest.approx(0.7489, abs=1e-3) and stats.tau_ceiling(0.3) > 0.3
    # the mean of more runs is a better yardstick: the ceiling rises towards 1, and one run is the old figure
    assert stats.tau_ceiling(0.65, 1) == stats.tau_ceiling(0.65) and stats.tau_ceiling(0.0, 5) == 0.0
    assert stats.tau_ceiling(1.0, 5) == pytest.approx(1.0)
    assert stats.tau_ceiling(0.57, 5) == pytest.approx(0.8517, abs=1e-3)
    assert stats.tau_ceiling(0.57, 5) > stats.tau_ceiling(0.57, 2)


def test_tau_across_two_noisy_families():
    assert stats.tau_across(0.6, 0.6) == pytest.approx(0.6) and stats.tau_across(1.0, 0.0) == pytest.approx(0.0)
    assert stats.tau_across(1.0, 0.5) == pytest.approx(0.636, abs=1e-3)  # (2/pi) asin(sqrt(sin(pi/4)))
    assert stats.tau_across(-0.3, 0.8) == 0.0  # a family that disagrees with itself carries no ranking


def test_mean_interval_is_the_student_t_interval_of_the_mean():
    xs = [1.0, 2.0, 4.0]
    m, h = stats.mean_interval(xs)
    assert m == pytest.approx(7 / 3) and h == pytest.approx(sp.t.ppf(0.975, 2) * np.std(xs, ddof=1) / math.sqrt(3))
    assert h == pytest.approx(4.303 * 1.5275 / math.sqrt(3), abs=1e-3)  # the textbook t(0.975, 2) = 4.303
    assert stats.mean_interval(xs, 0.5)[1] < h  # a lower level: a narrower interval
    m1, h1 = stats.mean_interval([3.0])
    assert m1 == 3.0 and math.isnan(h1)
