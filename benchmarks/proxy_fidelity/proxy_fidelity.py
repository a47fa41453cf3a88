"""Rank fidelity of the accuracy proxy: did two seeds of the proxy rank `v3_small` architectures alike? The record
of that study (issue 10, then issue 34's best networks): its report, regenerated from its results.

    python -m benchmarks.proxy_fidelity.proxy_fidelity

`proxy_fidelity.jsonl` holds one line per training: seeded random architectures of `v3_small` plus
MobileNetV3-Small and its x0.5 width variant, each trained with two seeds under a dataset's proxy budget
(`BUDGETS`, then longer ones on cluttered), with holdout and test top-1. The report gives per dataset and budget Kendall tau and
Spearman rho between the seeds, the seed-to-seed sd of top-1, the sd across architectures, the V3-Small vs x0.5
gap in seed-sd units, Kendall tau of the mean top-1 against #params and MACs, and the best half and quarter as
`search.fidelity` ranks them. Measuring anew is `python -m search.fidelity +space=v3_small data=cluttered`, which
trains and reports the same figures on any space, data and budgets (`docs/guides/fidelity.md`).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from benchmarks.common import read_jsonl
from search import fidelity_report as fr
from search import stats as st

HERE = Path(__file__).resolve().parent

# Proxy budgets. digits: the default search's (conf/search.yaml train.epochs=2, batch 64; conf/data/digits.yaml
# input 32). cluttered: the budget this study first recommended for the default search.
BUDGETS = {
    "digits": {"input_size": 32, "epochs": 2, "steps": None, "batch_size": 64},
    "cluttered": {"input_size": 64, "epochs": None, "steps": 200, "batch_size": 32},
}


def budget_tag(b: dict) -> str:
    run = f"{b['steps']}steps" if b.get("steps") else f"{b['epochs']}ep"
    extra = "".join(f"-{k}={v}" for k, v in sorted(b.get("data", {}).items()))
    return f"{b['input_size']}px-{run}-b{b['batch_size']}{extra}"


# ---------------------------------------------------------------- statistics
def stats(rows: list[dict], key: str = "top1", n_boot: int = 2000) -> dict | None:
    """Fidelity figures of one (dataset, budget) from its rows; None if no arch has two seeds yet."""
    by: dict[str, dict] = {}
    meta: dict[str, dict] = {}
    for r in rows:
        if r.get(key) is not None and not r.get("timing"):
            by.setdefault(r["name"], {})[r["seed"]] = 100.0 * r[key]
            meta[r["name"]] = r
    names = sorted(n for n, v in by.items() if len(v) >= 2)
    if len(names) < 3:
        return None
    seeds = sorted(set.intersection(*(set(by[n]) for n in names)))[:2]
    runs = np.array([[by[n][seeds[0]], by[n][seeds[1]]] for n in names])
    a, b, mean = runs[:, 0], runs[:, 1], runs.mean(axis=1)
    seed_sd = st.seed_sd(runs)

    def ratio(r):  # arch sd / seed sd of a resample of the architectures
        sd = st.seed_sd(r)
        return st.arch_sd(r) / sd if sd > 0 else math.nan

    # resample architectures: the intervals say how much 20 of them pin down
    tau_lo, tau_hi = st.bootstrap_interval(st.kendall_tau, a, b, n_boot=n_boot)
    ratio_lo, ratio_hi = st.bootstrap_interval(ratio, runs, n_boot=n_boot)
    out = {
        "n_archs": len(names), "seeds": seeds, "mean_top1": float(mean.mean()),
        "min_top1": float(mean.min()), "max_top1": float(mean.max()),
        "tau": st.kendall_tau(a, b), "tau_lo": tau_lo, "tau_hi": tau_hi,
        "rho": st.spearman_rho(a, b), "seed_sd": seed_sd, "arch_sd": st.arch_sd(runs),
        "tau_params": st.kendall_tau(mean, [meta[n]["params"] for n in names]),
        "tau_macs": st.kendall_tau(mean, [meta[n]["macs"] for n in names]),
        "seconds": float(np.mean([r["seconds"] for r in rows])),
        "ratio_lo": ratio_lo, "ratio_hi": ratio_hi,
    }
    out["arch_over_seed"] = out["arch_sd"] / seed_sd if seed_sd > 0 else math.inf
    if "V3-Small" in names and "V3-Small x0.5" in names:
        gap = mean[names.index("V3-Small")] - mean[names.index("V3-Small x0.5")]
        out["gap"] = float(gap)
        out["gap_sd"] = float(gap / seed_sd) if seed_sd > 0 else math.inf
    return out


def _where(target: float, lo: float, hi: float) -> str:
    """What the bootstrap interval says of the target, beyond the point estimate."""
    if not lo <= target <= hi:
        return f" (the interval {'excludes' if math.isfinite(lo) else 'is undefined at'} {target:g})"
    return f" (the interval holds {target:g}: the data do not tell either way)"


def _verdicts(s: dict) -> list[str]:
    """One line per issue-10 target, met or not, from the numbers in `s`."""
    def say(ok: bool) -> str:
        return "met" if ok else "**not met**"
    out = [f"- seed tau {s['tau']:.2f} over {s['n_archs']} architectures vs target >= 0.6 over >= 20: "
           f"{say(s['tau'] >= 0.6 and s['n_archs'] >= 20)}",
           f"- arch sd / seed sd {s['arch_over_seed']:.1f} [{s['ratio_lo']:.1f}, {s['ratio_hi']:.1f}] vs target >= 3: "
           f"{say(s['arch_over_seed'] >= 3)}" + _where(3.0, s["ratio_lo"], s["ratio_hi"])]
    if "gap_sd" in s:
        out.append(f"- V3-Small minus x0.5 {s['gap']:+.1f} points = {s['gap_sd']:+.1f} seed sd vs target >= +3: "
                   f"{say(s['gap_sd'] >= 3)}")
    out.append(f"- size alone: Kendall tau of the mean top-1 against #params {s['tau_params']:.2f}, "
               f"against MACs {s['tau_macs']:.2f}")
    return out


def _holdout_images(dataset: str, rows: list[dict]) -> int:
    """Holdout images behind these rows' top-1 (cluttered: its n_holdout; digits: its seeded split)."""
    if dataset == "cluttered":
        from train import cluttered_settings

        return int(cluttered_settings((rows[0].get("budget") or {}).get("data"))["n_holdout"])
    from train import load_data

    return len(load_data({"name": dataset, "input_size": 8, "seed": 0}).holdout)


def _two_seed_runs(rows: list[dict]) -> np.ndarray | None:
    """Networks x (seed 0, seed 1) holdout top-1 in points, by name; None for fewer than 3 networks."""
    by: dict[str, dict[int, float]] = {}
    for r in rows:
        if r.get("top1") is not None and not r.get("timing"):
            by.setdefault(r["name"], {})[r["seed"]] = 100.0 * r["top1"]
    names = sorted(n for n, v in by.items() if {0, 1} <= set(v))
    return np.array([[by[n][0], by[n][1]] for n in names]) if len(names) >= 3 else None


def best_networks(rows: list[dict], dataset: str, others: dict | None = None) -> list[str]:
    """The best half and best quarter (by two-seed mean) beside all networks, holdout, as ``python -m
    search.fidelity`` computes them (``search.fidelity_report.groups``), with its verdict; ``others``: {steps:
    groups} of the dataset's other budgets, for the verdict."""
    runs = _two_seed_runs(rows)
    if runs is None:
        return []
    gs, n_holdout = fr.groups(runs), _holdout_images(dataset, rows)
    b = rows[0].get("budget") or {}
    steps = b.get("steps") or 0
    label = f"{steps} steps" if steps else f"{b['epochs']} epochs" if b.get("epochs") else rows[0]["tag"]
    words = fr.verdict(steps, gs, n_holdout, others or {}, holdout_key=dataset == "cluttered")
    return ["", f"Among the best networks (chosen by the two-seed mean; holdout of {n_holdout} images), computed "
            "by `search.fidelity_report` as `python -m search.fidelity` does:", "", *fr.table(gs, n_holdout), "",
            words if steps else words.replace("0 steps:", f"{label}:", 1)]


def report(rows: list[dict], path: Path, pilot: list[dict] | None = None) -> str:
    """The markdown report of ``rows``, written to ``path``; ``pilot``: the pilot's rows (one seed each)."""
    groups: dict[tuple, list] = {}
    timing = [r for r in rows if r.get("timing")]
    rows = [r for r in rows if not r.get("timing")]
    for r in rows:
        groups.setdefault((r["dataset"], r["tag"]), []).append(r)
    lines = ["# Proxy rank fidelity (`benchmarks/proxy_fidelity/proxy_fidelity.py`)", "",
             "Random `v3_small` architectures (seeded sample) plus MobileNetV3-Small and its x0.5 width variant, "
             "each trained with two seeds (0, 1) under the dataset's proxy budget; single-thread CPU workers. "
             "Top-1 in points (%). Seed sd: pooled sd of one run, sqrt(mean((a-b)^2)/2) over architectures. "
             "Arch sd: sd across architectures of the two-seed mean. 95% intervals of tau and of arch sd / seed sd: "
             "bootstrap over architectures (2000 resamples). Holdout is what selection sees; test is reported only.",
             "", "Targets (issue 10, on the new task): seed tau >= 0.6 over >= 20 architectures, "
             "arch sd >= 3x seed sd, V3-Small above x0.5 by >= 3 seed sd.", "",
             "Each budget's second table ranks the best half and the best quarter (by two-seed mean) as "
             "`python -m search.fidelity` does. It reproduces issue 34's point figures (cluttered, 600 steps: tau "
             "0.66 / 0.43 / 0.11 over all / best half / best quarter; arch sd 0.60 and seed sd 0.75 points in the "
             "best quarter; 1000 and 2000 steps likewise). Its intervals differ from the issue's in the second "
             "decimal (best half [0.12, 0.69] against [0.13, 0.70]; best quarter [-0.55, 0.71] against [-0.57, "
             "0.79]) because each is drawn from its own 2000 resamples (seed 0, resamples of fewer than 3 distinct "
             "networks skipped); a percentile end moves by a few hundredths between draws, more with 10 "
             "networks than with 40. Reliability of one run and the holdout share are defined in "
             "`docs/guides/fidelity.md`.", ""]
    others: dict[str, dict] = {}  # {dataset: {steps: best-fraction groups}}: the verdicts compare budgets
    for (dataset, _), rs in groups.items():
        runs = _two_seed_runs(rs)
        steps = (rs[0].get("budget") or {}).get("steps")
        if runs is not None and steps:
            others.setdefault(dataset, {})[steps] = fr.groups(runs)
    for (dataset, tag), rs in sorted(groups.items()):
        done = len(rs)
        planned = len({r["name"] for r in rs}) * len({r["seed"] for r in rs})
        lines += [f"## {dataset}, {tag} ({done}/{planned} trainings finished, "
                  f"mean {np.mean([r['seconds'] for r in rs]):.0f} s per training incl. evaluation)", ""]
        lines += ["| split | archs | mean top-1 (min-max) | seed tau [95%] | seed rho | seed sd | arch sd | "
                  "arch sd / seed sd [95%] | V3-S - x0.5 (seed sd) | tau vs params | tau vs MACs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, split in (("top1", "holdout"), ("test_top1", "test")):
            s = stats(rs, key)
            if s is None:
                continue
            gap = f"{s['gap']:+.1f} ({s['gap_sd']:+.1f})" if "gap" in s else "n/a"
            lines.append(
                f"| {split} | {s['n_archs']} | {s['mean_top1']:.1f} ({s['min_top1']:.1f}-{s['max_top1']:.1f}) | "
                f"{s['tau']:.2f} [{s['tau_lo']:.2f}, {s['tau_hi']:.2f}] | {s['rho']:.2f} | {s['seed_sd']:.2f} | "
                f"{s['arch_sd']:.2f} | {s['arch_over_seed']:.1f} [{s['ratio_lo']:.1f}, {s['ratio_hi']:.1f}] | {gap} | "
                f"{s['tau_params']:.2f} | {s['tau_macs']:.2f} |")
        s = stats(rs, "top1")
        if s is not None:
            lines += ["", "Holdout, against issue 10's targets:", *_verdicts(s)]
            lines += best_networks(rs, dataset, others.get(dataset))
        fit_s = [r["fit_seconds"] for r in rs if r["name"] == "V3-Small"]
        if fit_s:
            lines += ["", f"V3-Small: {np.mean(fit_s):.0f} s per training (train + BN recalibration + holdout "
                      f"evaluation, {len(fit_s)} runs)."]
        lines.append("")
    if timing:
        lines += ["## Per-trial time of the default search's network at this budget", "",
                  "| dataset | budget | network | seconds (train + holdout) | MACs | load average (1 min) at the end |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['tag']} | {r['name']} | {r['fit_seconds']:.0f} | {r['macs'] / 1e6:.1f}M | "
                  f"{r.get('load', float('nan')):.1f} |" for r in timing]
        lines += [""] + [f"At {r['fit_seconds']:.0f} s per {r['name']} trial, the README's 15 minutes hold "
                         f"{int(900 // r['fit_seconds'])} trial(s) of this budget under the load it was timed at."
                         for r in timing]
        lines.append("")
    if pilot:
        lines += ["## Pilot (one seed; how the task's difficulty was chosen)", "",
                  "Rows of `benchmarks/proxy_fidelity/proxy_pilot.jsonl`: the first generator settings (digit 16-40 px, 8 fragments "
                  "of half a digit's side) against the ones adopted (24-48 px, 4 fragments of 0.4).", "",
                  "| budget and generator settings | network | seed | holdout top-1 | seconds |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['tag']} | {r['name']} | {r['seed']} | {100 * r['top1']:.1f} | {r['seconds']:.0f} |"
                  for r in pilot]
        lines.append("")
    lines += ["Wall times were measured with two single-thread workers on a 2-core machine shared with other "
              "jobs (load average 5-14 during the runs), so they are upper bounds for an idle machine.", ""]
    text = "\n".join(lines)
    path.write_text(text + "\n")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=HERE / "proxy_fidelity.jsonl")
    ap.add_argument("--report", type=Path, default=HERE / "proxy_fidelity.md")
    args = ap.parse_args(argv)
    text = report(read_jsonl(args.results), args.report, pilot=read_jsonl(args.results.with_name("proxy_pilot.jsonl")))
    print(text)
    print(f"results: {args.results}; report: {args.report}")
    return 0


if __name__ == "__main__":
    from core import run

    run(main)  # bad input: one line, exit 2
