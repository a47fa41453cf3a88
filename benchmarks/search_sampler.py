"""Default sampler (TPE) vs random search at the same trial budget on digits: hypervolume ratio.

    python benchmarks/search_sampler.py [--trials 30] [--seeds 0 1 2] [--epochs 2] [--startup N]
                                        [--results-dir /tmp/bneck_bench] [override ...]

Each (sampler, seed) is its own study ``<sampler>-s<seed>`` under ``--results-dir``; reruns resume, so
an interrupted benchmark picks up where it stopped. Hypervolume is the normalised one of
``search.pareto`` (box fixed by the reference network), so studies compare directly. Prints a
Markdown table: final hypervolume per seed, the ratio TPE / random, and hypervolume at half budget.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
import warnings
from pathlib import Path

LUT = Path(__file__).resolve().parent.parent / "results" / "lut"


def run_one(sampler: str, seed: int, args) -> dict:
    from core.cli import compose
    from search.study import Search

    overrides = ["+space=v3_large", "data=digits", f"sampler={sampler}", f"seed={seed}", f"n_trials={args.trials}",
                 f"train.epochs={args.epochs}", f"study_name={sampler}-s{seed}", f"results_dir={args.results_dir}",
                 "progress=false", *args.overrides]
    if sampler == "tpe" and args.startup is not None:
        overrides.append(f"sampler.n_startup_trials={args.startup}")
    cfg = compose("search", overrides)
    start = time.perf_counter()
    out = Search.from_config(cfg).run(progress=False)
    with open(out.folder / "hypervolume.csv", newline="") as f:
        hv = [(int(r["number"]), float(r["hypervolume"])) for r in csv.DictReader(f)]
    half = max((h for n, h in hv if n < args.trials // 2), default=0.0)
    print(f"  {sampler:>6} seed {seed}: hv {out.hypervolume:.4f} (half budget {half:.4f}), front {len(out.front)}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return {"hv": out.hypervolume, "half": half, "front": len(out.front), "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--startup", type=int, default=None, help="TPE n_startup_trials (default: conf/sampler/tpe.yaml)")
    ap.add_argument("--results-dir", default="/tmp/bneck_bench")
    ap.add_argument("overrides", nargs="*", help="more search.run overrides, e.g. latency.table=...")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    res = {}
    for seed in args.seeds:
        for sampler in ("tpe", "random"):
            res[sampler, seed] = run_one(sampler, seed, args)
    print(f"\n{args.trials} trials, {args.epochs:g} epochs, TPE startup "
          f"{args.startup if args.startup is not None else 'default'}\n")
    print("| seed | TPE hv | random hv | ratio | TPE hv @ half | random hv @ half | TPE front | random front |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for seed in args.seeds:
        t, r = res["tpe", seed], res["random", seed]
        ratio = t["hv"] / r["hv"] if r["hv"] else float("nan")
        ratios.append(ratio)
        print(f"| {seed} | {t['hv']:.4f} | {r['hv']:.4f} | {ratio:.3f} | {t['half']:.4f} | {r['half']:.4f} | "
              f"{t['front']} | {r['front']} |")
    gm = statistics.geometric_mean(ratios) if all(x > 0 for x in ratios) else float("nan")
    print(f"\ngeometric-mean ratio TPE / random: {gm:.3f} over {len(ratios)} seeds "
          f"(total {sum(v['seconds'] for v in res.values()) / 60:.1f} min)")


if __name__ == "__main__":
    main()
