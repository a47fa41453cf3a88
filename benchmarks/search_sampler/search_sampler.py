"""Samplers compared at the same trial budget: hypervolume of each study's front, over seeds (issue 12).

    python -m benchmarks.search_sampler.search_sampler [--trials 200] [--seeds 0 1 2] [--samplers tpe nsga2 random]
        [--space v3_large] [--accuracy supernet] [--results-dir results/sampler-bench] [override ...]

Each (sampler, seed) is its own study ``<sampler>-s<seed>`` under ``--results-dir``: a rerun resumes it
(Optuna storage), and one JSON line per finished study goes to ``--results`` (keyed by the settings, so
other budgets never mix). With ``accuracy=supernet`` (the default here) every study scores its trials with
the same supernet, trained once by the first study, so thousands of trials fit in an hour; what is
compared is how fast each sampler finds the front of that objective, not the objective's fidelity
(``supernet.md``). Hypervolume is ``search.pareto``'s normalised one (losses -top1, latency/ref,
MACs/ref in the box (0, 2x, 2x) of the space's reference network), so studies compare directly.

Report (``--report``): per sampler the mean hypervolume at 25%, 50% and 100% of the budget with a 95%
t-interval over seeds, and per sampler against random the geometric-mean ratio of final hypervolumes
with a 95% t-interval on the log ratios (paired by seed).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

from benchmarks.common import append_jsonl, read_jsonl
from search import stats as st

ROOT = Path(__file__).resolve().parents[2]

HERE = Path(__file__).resolve().parent
FRACTIONS = (0.25, 0.5, 1.0)


def settings(args) -> dict:
    return {"space": args.space, "data": args.data, "accuracy": args.accuracy, "trials": args.trials,
            "overrides": list(args.overrides)}


def key(s: dict) -> str:
    return json.dumps(s, sort_keys=True)


def run_one(sampler: str, seed: int, args) -> dict:
    from core import compose
    from search import Search

    overrides = [f"+space={args.space}", f"data={args.data}", f"accuracy={args.accuracy}", f"sampler={sampler}",
                 f"seed={seed}", f"n_trials={args.trials}", f"study_name={sampler}-s{seed}",
                 f"results_dir={args.results_dir}", "companions=false", "progress=false", *args.overrides]
    cfg = compose("search", overrides)
    start = time.perf_counter()
    out = Search.from_config(cfg).run(progress=True)
    with open(out.folder / "hypervolume.csv", newline="") as f:
        hv = [(int(r["number"]), float(r["hypervolume"])) for r in csv.DictReader(f)]
    at = {str(fr): max((h for n, h in hv if n < round(fr * args.trials)), default=0.0) for fr in FRACTIONS}
    return {"sampler": sampler, "seed": seed, "hv": out.hypervolume, "hv_at": at, "front": len(out.front),
            "seconds": time.perf_counter() - start, "folder": str(out.folder), "load": os.getloadavg()[0]}


def report(rows: list[dict], s: dict) -> str:
    by = {(r["sampler"], r["seed"]): r for r in rows}
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    L = ["# Samplers at the same trial budget: hypervolume (`benchmarks/search_sampler/search_sampler.py`)", "",
         f"Space `{s['space']}`, data `{s['data']}`, accuracy `{s['accuracy']}`, {s['trials']} trials per study, "
         f"overrides `{' '.join(s['overrides']) or 'none'}`. Hypervolume: `search.pareto`'s normalised one "
         "(higher is better). Intervals: 95% t over seeds.", "",
         "| sampler | seeds | hv @ 25% | hv @ 50% | hv @ 100% | front size | minutes per study |",
         "|---|---|---|---|---|---|---|"]
    for sm in samplers:
        rs = [by[sm, sd] for sd in seeds if (sm, sd) in by]
        cells = []
        for fr in FRACTIONS:
            m, h = st.mean_interval([r["hv_at"][str(fr)] for r in rs])
            cells.append(f"{m:.4f} ± {h:.4f}" if math.isfinite(h) else f"{m:.4f}")
        L.append(f"| {sm} | {len(rs)} | {' | '.join(cells)} | {statistics.mean(r['front'] for r in rs):.1f} | "
                 f"{statistics.mean(r['seconds'] for r in rs) / 60:.1f} |")
    L.append("")
    if "random" in samplers:
        L += ["| sampler / random | paired seeds | geometric-mean ratio of final hv [95%] | per seed | verdict |",
              "|---|---|---|---|---|"]
        for sm in (x for x in samplers if x != "random"):
            pairs = [(by[sm, sd]["hv"], by["random", sd]["hv"]) for sd in seeds
                     if (sm, sd) in by and ("random", sd) in by and by["random", sd]["hv"] > 0 and by[sm, sd]["hv"] > 0]
            if not pairs:
                continue
            logs = [math.log(a / b) for a, b in pairs]
            m, h = st.mean_interval(logs)
            lo, hi = (math.exp(m - h), math.exp(m + h)) if math.isfinite(h) else (math.nan, math.nan)
            if not math.isfinite(h):
                verdict = "one seed: no interval"
            elif lo >= 1.2:  # the target is a ratio, so it is met when the whole interval clears it
                verdict = "better than random, >= 1.2x (target met)"
            elif lo > 1:
                verdict = "better than random; " + ("1.2x not shown (interval reaches below)" if math.exp(m) >= 1.2
                                                    else "below the 1.2x target")
            elif hi < 1:
                verdict = "worse than random"
            else:
                verdict = "no difference shown (interval includes 1)"
            L.append(f"| {sm} | {len(pairs)} | {math.exp(m):.3f} [{lo:.3f}, {hi:.3f}] | "
                     f"{', '.join(f'{a / b:.3f}' for a, b in pairs)} | {verdict} |")
        L.append("")
    loads = [r["load"] for r in rows]
    L += [f"1-minute load average when each study finished: {min(loads):.1f}-{max(loads):.1f}.", ""]
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    ap.add_argument("--space", default="v3_large")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--accuracy", default="supernet", choices=("supernet", "train"))
    ap.add_argument("--results-dir", default=str(ROOT / "results" / "sampler-bench"))
    ap.add_argument("--results", type=Path, default=HERE / "search_sampler.jsonl")
    ap.add_argument("--report", type=Path, default=HERE / "search_sampler.md")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("overrides", nargs="*", help="more search.run overrides, e.g. latency.table=...")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    s = settings(args)
    k = key(s)
    rows = [r for r in read_jsonl(args.results) if r.get("key") == k]
    if not args.report_only:
        for seed in args.seeds:
            for sampler in args.samplers:
                if any(r["sampler"] == sampler and r["seed"] == seed for r in rows):
                    continue
                r = {"key": k, **run_one(sampler, seed, args)}
                append_jsonl(args.results, r)
                rows.append(r)
                print(f"{sampler} seed {seed}: hv {r['hv']:.4f}, front {r['front']}, {r['seconds'] / 60:.1f} min",
                      flush=True)
    if not rows:
        print(f"no finished study with these settings in {args.results}", file=sys.stderr)
        return 2
    text = report(rows, s)
    args.report.write_text(text)
    print(text)
    print(f"results: {args.results}; report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
