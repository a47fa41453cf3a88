"""The rank-fidelity statistics shared by ``search.fidelity`` and the fidelity benchmarks.

Scores are one row per network and one column per seed (a ``runs`` matrix, top-1 in points). A
network's score is its seed mean; "the best quarter" is chosen by that mean, never by one seed.
Intervals are percentile bootstraps over networks, seeded, so a report is reproducible; a resample
with fewer than three distinct networks cannot rank and is skipped.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["kendall_tau", "spearman_rho", "bootstrap_interval", "paired_gain", "prediction_interval",
           "spearman_brown", "tau_of_reliability", "reliability_of_tau", "tau_ceiling", "tau_across",
           "best_fraction", "seed_sd", "arch_sd", "mean_interval",
           "true_arch_var", "binomial_sd", "N_BOOT"]

N_BOOT = 2000


def kendall_tau(a, b) -> float:
    """Kendall tau-b of two scorings of the same networks (scipy); nan when either is constant."""
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def spearman_rho(a, b) -> float:
    """Spearman rank correlation of two scorings of the same networks (scipy)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def bootstrap_interval(stat: Callable[..., float], *arrays, n_boot: int = N_BOOT, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``stat(*arrays)`` over ``n_boot`` resamples of the rows (networks), the same rows
    drawn from every array. Resamples with fewer than 3 distinct rows or a non-finite value are skipped;
    (nan, nan) when none is left."""
    arrays = [np.asarray(x, dtype=float) for x in arrays]
    n = len(arrays[0])
    rng, vals = np.random.default_rng(seed), []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        if len(set(i.tolist())) > 2:
            v = stat(*(x[i] for x in arrays))
            if math.isfinite(v):
                vals.append(v)
    if not vals:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    return float(np.percentile(vals, tail)), float(np.percentile(vals, 100 - tail))


def paired_gain(cols_a: Sequence, cols_b: Sequence, target, stat: Callable = kendall_tau, n_boot: int = N_BOOT,
                seed: int = 0) -> tuple[float, float, float]:
    """Mean ``stat`` of the columns ``cols_a`` against ``target`` minus that of ``cols_b``, on the same networks,
    with its percentile interval over resamples of the networks (paired: one draw serves both sides)."""
    target = np.asarray(target, dtype=float)
    a = [np.asarray(c, dtype=float) for c in cols_a]
    b = [np.asarray(c, dtype=float) for c in cols_b]

    def gain(i):
        return float(np.mean([stat(c[i], target[i]) for c in a]) - np.mean([stat(c[i], target[i]) for c in b]))

    idx = np.arange(len(target))
    lo, hi = bootstrap_interval(lambda i: gain(i.astype(int)), idx, n_boot=n_boot, seed=seed)
    return gain(idx), lo, hi


def prediction_interval(xs, k: int = 1, level: float = 0.95) -> tuple[float, float]:
    """Interval for one more draw (or the mean of ``k`` more) of what ``xs`` (>= 2 seeds) are draws of:
    mean +- t sd sqrt(1/k + 1/n)."""
    from scipy.stats import t as student

    xs = np.asarray(xs, dtype=float)
    n = len(xs)
    half = student.ppf(0.5 + level / 2, n - 1) * xs.std(ddof=1) * math.sqrt(1 / k + 1 / n)
    return float(xs.mean() - half), float(xs.mean() + half)


def mean_interval(xs, level: float = 0.95) -> tuple[float, float]:
    """Mean of ``xs`` and the half-width of its Student t interval (n - 1 degrees of freedom); the half-width is
    nan for a single value."""
    from scipy.stats import t as student

    xs = np.asarray(xs, dtype=float)
    n, m = len(xs), float(xs.mean())
    if n < 2:
        return m, math.nan
    return m, float(student.ppf(0.5 + level / 2, n - 1) * xs.std(ddof=1) / math.sqrt(n))


def spearman_brown(r: float, k: float) -> float:
    """Reliability of the mean of ``k`` runs when one run has reliability ``r`` (Spearman-Brown)."""
    if r <= 0:
        return 0.0
    return k * r / (1 + (k - 1) * r)


def tau_of_reliability(r: float) -> float:
    """Kendall tau expected between two runs correlated at ``r`` if scores are Gaussian: (2/pi) asin r."""
    return 2 / math.pi * math.asin(min(max(r, -1.0), 1.0))


def reliability_of_tau(tau: float) -> float:
    """The inverse of ``tau_of_reliability``: sin(pi tau / 2)."""
    return math.sin(math.pi * tau / 2)


def tau_ceiling(tau_between: float, runs: int = 1) -> float:
    """Kendall tau a perfect ranking would reach against one run (or the mean of ``runs`` runs) when two runs agree
    at ``tau_between``, each run the truth plus independent Gaussian noise: corr(truth, run)^2 is the runs'
    reliability, and the mean of ``runs`` runs has its Spearman-Brown reliability."""
    return tau_of_reliability(math.sqrt(spearman_brown(reliability_of_tau(max(tau_between, 0.0)), runs)))


def tau_across(tau_a: float, tau_b: float) -> float:
    """Kendall tau between a member of family A and one of family B when both are one ranking plus independent
    Gaussian noise, from the agreement within each (r_AB = sqrt(r_A r_B))."""
    return tau_of_reliability(math.sqrt(reliability_of_tau(max(tau_a, 0.0)) * reliability_of_tau(max(tau_b, 0.0))))


def best_fraction(runs, fraction: float) -> np.ndarray:
    """Row indices of the best ``fraction`` of networks by seed mean (floor of n x fraction rows, best first;
    ties broken by row order, so the choice is deterministic)."""
    means = np.asarray(runs, dtype=float).mean(axis=1)
    k = int(math.floor(len(means) * fraction + 1e-9))
    return np.argsort(-means, kind="stable")[:k]


def seed_sd(runs) -> float:
    """Pooled sd of one run around its network's seed mean: sqrt(mean over networks of the within-network variance
    (ddof=1)); with two seeds sqrt(mean((a - b)^2) / 2)."""
    runs = np.asarray(runs, dtype=float)
    return float(np.sqrt(np.mean(np.var(runs, axis=1, ddof=1))))


def arch_sd(runs) -> float:
    """sd across networks (ddof=1) of their seed means."""
    return float(np.std(np.asarray(runs, dtype=float).mean(axis=1), ddof=1))


def true_arch_var(runs) -> float:
    """Variance across networks of what infinitely many seeds would give: the seed means' variance less the seed
    noise left in them (seed sd^2 / seeds); 0 when the noise explains it all. For a best fraction chosen by
    these same seeds it carries that selection; it is what the data can say without fresh seeds."""
    runs = np.asarray(runs, dtype=float)
    return max(arch_sd(runs) ** 2 - seed_sd(runs) ** 2 / runs.shape[1], 0.0)


def binomial_sd(p: float, n: int) -> float:
    """sd in points of a top-1 near ``p`` (a fraction) measured on ``n`` images: the holdout's size alone."""
    return 100 * math.sqrt(p * (1 - p) / n)
