"""What ``search.fidelity`` concludes from its trainings: rank agreement over all networks, the best half and
the best quarter (by seed mean) per budget, where the seed noise comes from, and a verdict in words.

``groups`` is the one computation behind the command's ``fidelity.md`` and the benchmark reports'
best-half / best-quarter tables (``benchmarks/proxy_fidelity/``, ``benchmarks/supernet_fidelity/``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import stats

FRACTIONS = (("all", 1.0), ("best half", 0.5), ("best quarter", 0.25))
TARGET_RELIABILITY = 0.8  # two k-seed means then agree at Kendall tau (2/pi) asin 0.8 = 0.59
MORE_HOLDOUT = 4  # the larger holdout a verdict prices: 4x the images, a quarter of the binomial variance


@dataclass
class Group:
    """Rank agreement between seed 0 and seed 1 (and their spread) among one fraction of the networks."""

    label: str
    n: int
    rows: list[int]  # indices into the runs, best first
    tau: float = math.nan
    tau_lo: float = math.nan
    tau_hi: float = math.nan
    rho: float = math.nan
    rho_lo: float = math.nan
    rho_hi: float = math.nan
    arch_sd: float = math.nan
    seed_sd: float = math.nan
    reliability: float = math.nan  # of one run: true arch variance / (that + seed variance)
    mean_top1: float = math.nan


def groups(runs, n_boot: int = stats.N_BOOT, seed: int = 0) -> list[Group]:
    """All networks, the best half and the best quarter by seed mean of ``runs`` (networks x seeds, points):
    seed-to-seed tau and rho of the first two seeds with bootstrap intervals, arch sd, seed sd, reliability."""
    runs = np.asarray(runs, dtype=float)
    out = []
    for label, frac in FRACTIONS:
        idx = stats.best_fraction(runs, frac)
        g = Group(label, len(idx), idx.tolist())
        if len(idx) >= 2:
            sub = runs[idx]
            g.arch_sd, g.seed_sd, g.mean_top1 = stats.arch_sd(sub), stats.seed_sd(sub), float(sub.mean())
            true = stats.true_arch_var(sub)
            g.reliability = true / (true + g.seed_sd ** 2) if true + g.seed_sd ** 2 > 0 else math.nan
        if len(idx) >= 3:
            a, b = runs[idx, 0], runs[idx, 1]
            g.tau, g.rho = stats.kendall_tau(a, b), stats.spearman_rho(a, b)
            g.tau_lo, g.tau_hi = stats.bootstrap_interval(stats.kendall_tau, a, b, n_boot=n_boot, seed=seed)
            g.rho_lo, g.rho_hi = stats.bootstrap_interval(stats.spearman_rho, a, b, n_boot=n_boot, seed=seed)
        out.append(g)
    return out


def against(scores, runs, n_boot: int = stats.N_BOOT, seed: int = 0) -> list[dict]:
    """Kendall tau of another scoring (the supernet's) against the seed mean of ``runs``, per fraction (chosen by
    that seed mean), with bootstrap intervals."""
    scores, means = np.asarray(scores, dtype=float), np.asarray(runs, dtype=float).mean(axis=1)
    out = []
    for label, frac in FRACTIONS:
        idx = stats.best_fraction(runs, frac)
        row = {"label": label, "n": len(idx), "tau": math.nan, "lo": math.nan, "hi": math.nan}
        if len(idx) >= 3:
            row["tau"] = stats.kendall_tau(scores[idx], means[idx])
            row["lo"], row["hi"] = stats.bootstrap_interval(stats.kendall_tau, scores[idx], means[idx],
                                                            n_boot=n_boot, seed=seed)
        out.append(row)
    return out


def holdout_share(g: Group, n_holdout: int | None) -> float:
    """The part of the seed variance that a holdout of ``n_holdout`` images gives by its size alone: the binomial
    variance of a top-1 at the group's mean over the seed variance, capped at 1. An upper bound: two seeds score
    the same images, and their errors are correlated image by image, which the binomial figure ignores."""
    if not n_holdout or not g.seed_sd or not math.isfinite(g.mean_top1):
        return math.nan
    return min(stats.binomial_sd(g.mean_top1 / 100, n_holdout) ** 2 / g.seed_sd ** 2, 1.0)


def seeds_needed(r1: float, target: float = TARGET_RELIABILITY) -> int | None:
    """The fewest seeds whose mean reaches ``target`` reliability (Spearman-Brown); None: none can."""
    if not math.isfinite(r1) or r1 <= 0:
        return None
    if r1 >= target:
        return 1
    return math.ceil(target * (1 - r1) / ((1 - target) * r1) - 1e-9)


def _f(v: float, spec: str = ".2f") -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, spec)


def interval(v: float, lo: float, hi: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.2f} [{_f(lo)}, {_f(hi)}]"


def verdict(steps: int, gs: list[Group], n_holdout: int | None, others: dict[int, list[Group]],
            holdout_key: bool = True) -> str:
    """The verdict on one budget, in words, with the figures it rests on. ``n_holdout``: the holdout's images;
    ``holdout_key``: whether the dataset sizes it with ``data.n_holdout``."""
    q = gs[-1]
    if q.n < 3:
        return (f"**{steps} steps: not judged** -- the best quarter holds {q.n} networks; measure at least 12 "
                f"(fidelity.archs=12 or more) to judge it.")
    if q.tau_lo > 0:
        return (f"**{steps} steps: the best quarter is separated** -- seed-to-seed tau among its {q.n} networks is "
                f"{interval(q.tau, q.tau_lo, q.tau_hi)}, above 0 with its interval; one training per trial ranks "
                f"them (arch sd {q.arch_sd:.2f} / seed sd {q.seed_sd:.2f} points).")
    head = (f"**{steps} steps: the best quarter is not separated** -- seed-to-seed tau among its {q.n} networks is "
            f"{interval(q.tau, q.tau_lo, q.tau_hi)}; their seed means spread {q.arch_sd:.2f} points (sd) against "
            f"a seed sd of {q.seed_sd:.2f}, so one training's reliability there is {_f(q.reliability)}.")
    fixes = []
    k = seeds_needed(q.reliability)
    if k is None:
        fixes.append("these figures predict no gain from `train.seeds`: the seed means spread no more than seed "
                     "noise alone would make them (a true spread too small for this many networks and seeds to show)")
    else:
        r = stats.spearman_brown(q.reliability, k)
        fixes.append(f"`train.seeds={k}` would bring it to {r:.2f} (two such means agreeing at tau about "
                     f"{stats.tau_of_reliability(r):.2f}), at {k}x the training time per trial")
    share = holdout_share(q, n_holdout)
    if math.isfinite(share):
        more = (f"`data.n_holdout={MORE_HOLDOUT * n_holdout}`" if holdout_key
                else f"a holdout of {MORE_HOLDOUT * n_holdout} images")
        line = (f"the holdout's size accounts for up to {share:.0%} of the seed variance (binomial sd "
                f"{stats.binomial_sd(q.mean_top1 / 100, n_holdout):.2f} points on {n_holdout} images)")
        if k is not None and q.reliability < 1:
            true = q.reliability * q.seed_sd ** 2 / (1 - q.reliability)
            cut = share * (1 - 1 / MORE_HOLDOUT)
            r_more = true / (true + q.seed_sd ** 2 * (1 - cut))
            line += f": {more} would bring one training's reliability to at most {r_more:.2f}"
        fixes.append(line)
    # Another budget is named only where its best quarter is separated: a reliability merely higher than this
    # one's, on a few networks, is inside the noise.
    better = [(s, o[-1]) for s, o in others.items() if s != steps and o[-1].n >= 3 and o[-1].tau_lo > 0]
    if better:
        s, o = max(better, key=lambda x: x[1].tau_lo)
        fixes.append(f"another budget: at {s} steps the best quarter is separated (tau "
                     f"{interval(o.tau, o.tau_lo, o.tau_hi)} among {o.n} networks)")
    else:
        fixes.append("no other budget measured here separates the best quarter")
    return head + " What would help: " + "; ".join(fixes) + "."


def table(gs: list[Group], n_holdout: int | None = None) -> list[str]:
    lines = ["| networks | n | mean top-1 | seed tau [95%] | seed rho [95%] | arch sd | seed sd | "
             "reliability of one run | holdout share of seed variance |", "|---|---|---|---|---|---|---|---|---|"]
    for g in gs:
        lines.append(f"| {g.label} | {g.n} | {_f(g.mean_top1, '.1f')} | {interval(g.tau, g.tau_lo, g.tau_hi)} | "
                     f"{interval(g.rho, g.rho_lo, g.rho_hi)} | {_f(g.arch_sd)} | {_f(g.seed_sd)} | "
                     f"{_f(g.reliability)} | {_f(holdout_share(g, n_holdout), '.0%')} |")
    return lines


def runs_by_budget(records: list[dict], seeds: int) -> dict[int, tuple[list[str], np.ndarray, list[str]]]:
    """{steps: (network names, networks x seeds matrix in points, archs)} for the networks with ``seeds``
    finished trainings at that budget, by name."""
    by: dict[int, dict[str, dict[int, float]]] = {}
    names: dict[str, str] = {}
    for r in records:
        if r.get("kind") == "train" and r.get("top1") is not None:
            by.setdefault(int(r["steps"]), {}).setdefault(r["arch"], {})[int(r["seed"])] = 100 * r["top1"]
            names[r["arch"]] = r["network"]
    out = {}
    for steps, per in sorted(by.items()):
        full = [(a, v) for a, v in per.items() if len(v) >= seeds]
        if full:
            order = sorted(full, key=lambda x: names[x[0]])
            out[steps] = ([names[a] for a, _ in order],
                          np.array([[v[s] for s in sorted(v)[:seeds]] for _, v in order]), [a for a, _ in order])
    return out


def plot_info(title: str, budgets: dict, computed: dict[int, list[Group]]):
    """What ``fidelity.png`` shows: per budget, each network's seed 0 against seed 1, the best quarter marked."""
    from plots.fidelity import FidelityInfo, Panel

    panels = []
    for steps, (names, runs, _) in budgets.items():
        best = set(computed[steps][-1].rows)
        q = computed[steps][-1]
        panels.append(Panel(f"{steps} steps: best quarter tau {interval(q.tau, q.tau_lo, q.tau_hi)}",
                            tuple(names), tuple(float(x) for x in runs[:, 0]), tuple(float(x) for x in runs[:, 1]),
                            tuple(i in best for i in range(len(names)))))
    return FidelityInfo(title, tuple(panels))
