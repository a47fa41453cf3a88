"""A supernet search against a per-trial-training search at equal time (issue 12).

    python -m benchmarks.search_equal_time.search_equal_time [--train-trials 120] [--top 3] [--retrain-steps 800]
        [--supernet-steps 2000] [--results-dir results/equal-time] [override ...]

1. ``train``: a search of ``v3_small`` on ``cluttered`` at 64 px with ``accuracy=train`` at a trial's budget
   (200 steps of batch 32, as ``proxy_fidelity``'s), ``--train-trials`` trials. Its time W is the sum of
   its trials' ``cpu_s``: CPU seconds of the one-thread worker, what its wall time is on a core of its own. On a
   shared machine wall seconds (``duration_s``) vary with the other load (here the same kind of trial took 48 s
   in one hour and 68 s in another), so two studies run hours apart would not get equal time by them.
2. ``supernet``: the same search with ``accuracy=supernet`` (``--supernet-steps`` sandwich steps of batch 64).
   The supernet's training CPU seconds (from its checkpoint) count against W; trials are added in chunks until
   they plus its trials' ``cpu_s`` reach W. Only trials finished within W count.
3. Each study's front within W; its ``--top`` members by holdout top-1 among those inside the latency range both
   fronts cover (``shared_range``: the most accurate members of a front are its slowest, and the two fronts' were
   0.6 ms apart, so a comparison at equal latency had no points) are retrained standalone
   (``--retrain-steps`` steps of batch 32, 4x a trial's, seed 0) and scored on holdout and test.
4. Report: trials within W, front size and best holdout top-1 per study; the retrained networks; and at equal
   latency, each retrained network's test top-1 minus the other study's (piecewise linear in the study's
   latency between its retrained points; points outside the other's latency range are not compared).

Extra ``key=value`` overrides go to both searches (e.g. ``latency.table=<file> latency.measure_missing=false``
to cost trials with a table built beforehand). Everything resumes: the studies through their Optuna storage,
the supernet through its checkpoint, retrainings through ``search_equal_time.jsonl`` (one line each, keyed by
the settings). The report, ``search_equal_time.md``, is rewritten from those at the end of every run.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from benchmarks.common import append_jsonl, read_jsonl
from benchmarks.netadapt_vs_multiplier.netadapt_vs_multiplier import interp
from core import UserError

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SPACE, DATA, SIZE = "v3_small", "cluttered", 64
CLOCK = "cpu_s"  # what a trial's time is counted in (module note)
TRIAL = {"steps": 200, "batch_size": 32}


def settings(args) -> dict:
    return {"space": SPACE, "data": DATA, "input_size": SIZE, "train_trials": args.train_trials,
            "supernet_steps": args.supernet_steps, "retrain_steps": args.retrain_steps, "top": args.top,
            "overrides": list(args.overrides)}


def key(s: dict) -> str:
    return json.dumps(s, sort_keys=True)


def data_overrides(overrides: list[str]) -> dict:
    """The ``data.<key>=<value>`` overrides as the cluttered generator's settings."""
    import yaml

    return {k[len("data."):]: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides if "=" in o)
            if k.startswith("data.") and k != "data.input_size"}


# ---------------------------------------------------------------- pure arithmetic (tested)
def within(rows: list[dict], budget_s: float, spent_s: float = 0.0) -> list[dict]:
    """The complete trials, in number order, that finished before ``spent_s`` plus their ``CLOCK`` seconds passed
    ``budget_s`` (trials run one after another: the first that overruns ends the count)."""
    out, t = [], spent_s
    for r in sorted(rows, key=lambda r: int(r["number"])):
        if r["state"] != "COMPLETE":
            continue
        t += seconds(r)
        if t > budget_s:
            break
        out.append(r)
    return out


def seconds(r: dict) -> float:
    """A complete trial's ``CLOCK`` seconds; a trial recorded without them cannot be counted."""
    if r.get(CLOCK) in (None, ""):
        raise UserError(f"trial {r['number']} has no {CLOCK} (recorded before trials kept their CPU "
                         "seconds): move its study folder aside and rerun to start that study again")
    return float(r[CLOCK])


def more_trials(rows: list[dict], budget_s: float, spent_s: float, guess_s: float = 15.0) -> int:
    """How many more trials are likely to fit in the time left (0 when a trial has already overrun it)."""
    done = [seconds(r) for r in rows if r["state"] == "COMPLETE"]
    left = budget_s - spent_s - sum(done)
    if left <= 0:
        return 0
    per = sum(done) / len(done) if done else guess_s
    return max(1, math.ceil(left / per))


def best(front: list[dict], top: int) -> list[dict]:
    return sorted(front, key=lambda r: -float(r["top1"]))[:top]


def shared_range(fronts: list[list[dict]]) -> tuple[float, float] | None:
    """The latencies every front covers (from the largest of their fastest to the smallest of their slowest
    members); None when they do not overlap."""
    if any(not f for f in fronts):
        return None
    lo = max(min(float(r["latency_ms"]) for r in f) for f in fronts)
    hi = min(max(float(r["latency_ms"]) for r in f) for f in fronts)
    return (lo, hi) if lo <= hi else None


def picks(front: list[dict], top: int, span: tuple[float, float] | None) -> list[dict]:
    """The ``top`` best by holdout top-1 among the members inside ``span`` (the whole front without one)."""
    return best([r for r in front if span is None or span[0] <= float(r["latency_ms"]) <= span[1]], top)


def at_equal_latency(mine: list[dict], theirs: list[dict]) -> list[dict]:
    """Per retrained network of one study inside the other's latency range: its test top-1 minus the other
    study's at the same latency (piecewise linear between the other's retrained points)."""
    lats, accs = [r["latency_ms"] for r in theirs], [r["test_top1"] for r in theirs]
    return [{"number": r["number"], "latency_ms": r["latency_ms"],
             "diff": r["test_top1"] - interp(r["latency_ms"], lats, accs)}
            for r in mine if lats and min(lats) <= r["latency_ms"] <= max(lats)]


# ---------------------------------------------------------------- the work
def search(name: str, accuracy: list[str], n_trials: int, args) -> list[dict]:
    from core import compose
    from search import Search, read_csv

    cfg = compose("search", [f"+space={SPACE}", f"data={DATA}", f"data.input_size={SIZE}", *accuracy,
                             f"n_trials={n_trials}", f"study_name={name}", f"results_dir={args.results_dir}",
                             "companions=false", "progress=false", *args.overrides])
    out = Search.from_config(cfg).run(progress=True)
    return read_csv(out.folder / "trials.csv")


def supernet_seconds(args, run_name: str) -> float:
    from train import read_checkpoint

    state = read_checkpoint(Path(args.results_dir) / "supernet" / SPACE / run_name)
    if state is None or not state["done"]:
        raise UserError(f"the supernet {run_name} is not trained: rerun to resume it")
    if state.get("cpu_seconds") is None:
        raise UserError(f"the supernet {run_name} was trained before checkpoints kept CPU seconds: move "
                         "its folder aside and rerun to train it again")
    return float(state["cpu_seconds"])


def run_studies(args) -> dict:
    train_acc = ["accuracy=train", f"train.steps={TRIAL['steps']}", f"train.batch_size={TRIAL['batch_size']}"]
    rows_t = search("train", train_acc, args.train_trials, args)
    budget = sum(seconds(r) for r in rows_t if r["state"] == "COMPLETE")
    run_name = f"equal-time-{args.supernet_steps}"
    sup_acc = ["accuracy=supernet", f"accuracy.steps={args.supernet_steps}", "accuracy.batch_size=64",
               f"accuracy.run_name={run_name}"]
    rows_s = search("supernet", sup_acc, 1, args)  # trains (or loads) the supernet, scores one trial
    spent = supernet_seconds(args, run_name)
    while (n := more_trials(rows_s, budget, spent)) > 0:
        complete = [r for r in rows_s if r["state"] == "COMPLETE"]
        left = budget - spent - sum(seconds(r) for r in complete)
        print(f"equal time: {left:.0f} s left of {budget:.0f}: {n} more supernet trials", flush=True)
        rows_s = search("supernet", sup_acc, len(complete) + n, args)
    return {"budget_s": budget, "supernet_s": spent, "train": within(rows_t, budget),
            "supernet": within(rows_s, budget, spent)}


def train_standalone(arch: str, s: dict) -> dict:
    """``arch`` trained from scratch on the searches' data (overrides included): ``retrain_steps`` of batch 32, seed
    0, scored on holdout and test."""
    from measure import count_macs
    from space import parse_arch
    from train import TrainConfig, TrainEstimator, load_data

    a, t0 = parse_arch(arch), time.perf_counter()
    data = load_data({"name": DATA, "input_size": SIZE, "seed": 0, **data_overrides(s["overrides"])})
    acc = TrainEstimator(data, TrainConfig(epochs=0, steps=s["retrain_steps"], batch_size=32, seed=0, device="cpu"))(a)
    return {"top1": acc.top1, "test_top1": acc.test_top1, "macs": count_macs(a, SIZE),
            "seconds": time.perf_counter() - t0}


def retrain(study: str, picks: list[dict], s: dict, results: Path) -> list[dict]:
    done = {(r["study"], r["number"]): r for r in read_jsonl(results) if r.get("key") == key(s)}
    for r in picks:
        if (study, int(r["number"])) not in done:
            row = {"kind": "retrain", "key": key(s), "study": study, "number": int(r["number"]), "arch": r["arch"],
                   "latency_ms": float(r["latency_ms"]), "search_top1": float(r["top1"]),
                   **train_standalone(r["arch"], s)}
            append_jsonl(results, row)
            done[(study, row["number"])] = row
    return [done[(study, int(r["number"]))] for r in picks]


def report(s: dict, studies: dict, fronts: dict, retrained: dict, span: tuple[float, float] | None) -> str:
    L = ["# Supernet search vs per-trial training at equal time (`benchmarks/search_equal_time/search_equal_time.py`)", "",
         f"`{SPACE}` on `{DATA}` at {SIZE} px; per-trial training {TRIAL['steps']} steps of batch "
         f"{TRIAL['batch_size']}; supernet {s['supernet_steps']} sandwich steps of batch 64; overrides "
         f"`{' '.join(s['overrides']) or 'none'}`. "
         f"Time W = {studies['budget_s']:.0f} CPU s of one-thread workers (the per-trial search's "
         f"{len(studies['train'])} trials; CPU seconds, as a dedicated core's wall time: the module note says "
         f"why); the supernet's training took {studies['supernet_s']:.0f} s of it. One seed per search and per "
         "retraining: no interval, so a difference here is one draw, not a shown effect.", "",
         "| search | trials within W | front | best holdout top-1 in the front |", "|---|---|---|---|"]
    for name in ("train", "supernet"):
        f = fronts[name]
        top = max((100 * float(r["top1"]) for r in f), default=math.nan)
        L.append(f"| {name} | {len(studies[name])} | {len(f)} | {top:.1f} |")
    where = (f"among its members at {span[0]:.3f}-{span[1]:.3f} ms, the latencies both fronts cover" if span else
             "(the fronts share no latency range)")
    L += ["", f"Each front's {s['top']} best by holdout top-1 {where}, retrained standalone ({s['retrain_steps']} "
          "steps of batch 32, seed 0):", "", "| search | trial | latency ms | MACs | top-1 in the search | retrained "
          "holdout | retrained test |", "|---|---|---|---|---|---|---|"]
    for name in ("train", "supernet"):
        for r in sorted(retrained[name], key=lambda r: r["latency_ms"]):
            L.append(f"| {name} | {r['number']} | {r['latency_ms']:.3f} | {r['macs'] / 1e6:.1f}M | "
                     f"{100 * r['search_top1']:.1f} | {100 * r['top1']:.1f} | {100 * r['test_top1']:.1f} |")
    L += ["", "At equal latency (test top-1 minus the other search's retrained curve at the same latency):", ""]
    for a, b in (("supernet", "train"), ("train", "supernet")):
        d = at_equal_latency(retrained[a], retrained[b])
        if d:
            L.append(f"- {a} vs {b}: " + ", ".join(f"trial {x['number']} at {x['latency_ms']:.3f} ms "
                                                   f"{100 * x['diff']:+.1f} points" for x in d)
                     + f"; mean {100 * sum(x['diff'] for x in d) / len(d):+.1f} over {len(d)} point(s)")
        else:
            L.append(f"- {a} vs {b}: no retrained {a} network lies within the latency range of {b}'s")
    return "\n".join(L) + "\n"


def main(argv: list[str]) -> int:
    from core import quiet_warnings
    from search import pareto_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-trials", type=int, default=120)
    ap.add_argument("--supernet-steps", type=int, default=2000)
    ap.add_argument("--retrain-steps", type=int, default=800)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--results-dir", default=str(ROOT / "results" / "equal-time"))
    ap.add_argument("--results", type=Path, default=HERE / "search_equal_time.jsonl")
    ap.add_argument("--report", type=Path, default=HERE / "search_equal_time.md")
    args, args.overrides = ap.parse_known_args(argv)
    quiet_warnings()
    s = settings(args)
    studies = run_studies(args)
    fronts = {name: pareto_rows(studies[name]) for name in ("train", "supernet")}
    span = shared_range(list(fronts.values()))
    retrained = {name: retrain(name, picks(fronts[name], args.top, span), s, args.results) for name in fronts}
    text = report(s, studies, fronts, retrained, span)
    args.report.write_text(text)
    print(text)
    print(f"report: {args.report}; retrainings: {args.results}; studies: {args.results_dir}/search/{SPACE}/")
    return 0


if __name__ == "__main__":
    from core import run

    run(main)  # bad input: one line, exit 2
