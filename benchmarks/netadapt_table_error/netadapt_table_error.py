"""Where the latency table misleads NetAdapt: every network of its trajectories, and a width-multiplier ladder,
timed end to end in the same rounds.

    python -m benchmarks.netadapt_table_error.netadapt_table_error [key=value ...] [--runs DIR ...] [--rounds 5] [--out benchmarks]

NetAdapt picks each cut by the table's predicted saving (``latency=lut``); the sweep
(``netadapt_vs_multiplier.md``) found its final networks slower, relative to their start, than the table said,
and the multiplier's faster. This script measures the error along the way instead of at the end.

- Networks: every iteration of each run in ``--runs`` (``history.jsonl``; the runs of one start network), and
  the start scaled by the width multiplier 1.0, 0.95, ..., 0.5.
- Timing: ``--rounds`` rounds; each round times all of them end to end (``LatencyTable.measure_networks``:
  shuffled sweeps, the latency settings of ``conf/netadapt.yaml`` and the overrides). One JSON line per round
  goes to ``<out>/netadapt_table_error.jsonl`` (rerun to resume or to add rounds).
- A network's *measured fraction* is the median over rounds of its time over the start's in the same round;
  its *predicted fraction* is the table's prediction over the start's. Their ratio is the table's error on the
  network relative to the start (1: right; > 1: slower than predicted).
- A *cut* is one iteration: predicted saving (previous minus this predicted fraction) against measured saving.
  Per kind of cut (``expand``: one block's expansion; ``width``: a stage's output channels), the sum of measured
  over the sum of predicted savings, with a 95% bootstrap interval over cuts: < 1 means the table overstates
  what that kind of cut saves.
- ``--entries R``: the table's parts themselves. Every entry (stem, block, head) of those networks is timed
  again in R rounds as the table times its entries (``LatencyTable.time_entries``, converted to the table's
  reference speed; one JSON line per round in ``<out>/netadapt_table_error_entries.jsonl``). Per entry: the
  stored value over the median of the fresh rounds, split into the start network's entries and the ones
  NetAdapt's cuts and the ladder added (filled on demand during the runs).
"""
from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
from pathlib import Path

from benchmarks.common import bracket, read_jsonl, split_overrides, timed_rounds, write_report
from core import UserError
from search import stats as st

HERE = Path(__file__).resolve().parent

MULTIPLIERS = tuple(round(1.0 - 0.05 * i, 2) for i in range(11))


def trajectory(run: Path) -> list[dict]:
    """The run's iterations: ``iteration``, ``arch``, ``chosen`` (``start`` for the first)."""
    rows = read_jsonl(run / "history.jsonl")
    return [{"iteration": r["iteration"], "arch": r["arch"], "chosen": r["chosen"]} for r in rows]


def measured_fractions(rounds: list[dict], start: str) -> dict[str, float]:
    """Per network, the median over rounds of its time over the start's time in the same round."""
    nets = set().union(*(q["ms"] for q in rounds)) if rounds else set()
    return {a: statistics.median(q["ms"][a] / q["ms"][start] for q in rounds if a in q["ms"]) for a in nets}


def kind(chosen: str) -> str:
    """``expand[6] 120->72`` -> ``expand``."""
    return chosen.split("[", 1)[0]


def cuts(traj: list[dict], predicted: dict[str, float], measured: dict[str, float]) -> list[dict]:
    """One row per iteration after the start: its kind and its predicted and measured saving (fractions)."""
    return [{"kind": kind(b["chosen"]), "chosen": b["chosen"], "iteration": b["iteration"],
             "predicted": predicted[a["arch"]] - predicted[b["arch"]],
             "measured": measured[a["arch"]] - measured[b["arch"]]}
            for a, b in zip(traj, traj[1:])]


def saving_ratio(rows: list[dict], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Sum of measured over sum of predicted savings, and its 95% bootstrap interval over the rows."""
    def ratio(rs):
        p = sum(r["predicted"] for r in rs)
        return sum(r["measured"] for r in rs) / p if p > 0 else float("nan")

    rng = random.Random(seed)
    boot = sorted(ratio([rng.choice(rows) for _ in rows]) for _ in range(resamples))
    return ratio(rows), boot[int(0.025 * resamples)], boot[int(0.975 * resamples) - 1]


def error_at(fraction: float, traj: list[dict], predicted: dict[str, float], measured: dict[str, float]) -> float:
    """The table's error (measured over predicted fraction) on the first network predicted at or below
    ``fraction``: where a run of that budget stops."""
    for r in traj:
        if predicted[r["arch"]] <= fraction:
            return measured[r["arch"]] / predicted[r["arch"]]
    return float("nan")


def ladder_error_at(fraction: float, ladder: list[str], predicted: dict[str, float],
                    measured: dict[str, float]) -> float:
    """The multiplier's error at ``fraction``, interpolated linearly in predicted fraction along the ladder."""
    pts = sorted((predicted[a], measured[a] / predicted[a]) for a in ladder)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= fraction <= x1:
            return y0 + (y1 - y0) * (fraction - x0) / (x1 - x0) if x1 > x0 else y0
    return float("nan")


def report(runs: dict[str, list[dict]], ladder: list[str], predicted: dict[str, float], rounds: list[dict],
           start: str, budgets=(0.9, 0.75, 0.6)) -> str:
    measured = measured_fractions(rounds, start)
    lines = [f"# Where the latency table misleads NetAdapt ({len(rounds)} rounds, {len(measured)} networks)", "",
             "`python -m benchmarks.netadapt_table_error.netadapt_table_error` (module note: method). Error = measured fraction of "
             "the start over the table's predicted fraction (1: the table is right relative to the start; > 1: "
             "slower than predicted). Mean over runs, 95% t-interval.", "",
             "| predicted fraction of the start | NetAdapt error (mean over runs) | multiplier error (one ladder, "
             "interpolated; no interval) |",
             "|---|---|---|"]
    for f in budgets:
        errs = [e for t in runs.values() if (e := error_at(f, t, predicted, measured)) == e]  # nan: not reached
        m, h = st.mean_interval(errs) if errs else (math.nan, math.nan)
        lines.append(f"| {f:g} | {bracket(m, h, '.3f')} | "
                     f"{ladder_error_at(f, ladder, predicted, measured):.3f} |")
    rows = [c for t in runs.values() for c in cuts(t, predicted, measured)]
    lines += ["", "Cuts of all runs by kind: measured over predicted saving (sum over cuts), 95% bootstrap "
              "interval over cuts. Below 1: the table overstates what the kind of cut saves.", "",
              "| kind | cuts | predicted saving (sum, fraction of start) | measured saving | measured / predicted |",
              "|---|---|---|---|---|"]
    for k in sorted({c["kind"] for c in rows}) + ["all"]:
        mine = [c for c in rows if k in ("all", c["kind"])]
        r, lo, hi = saving_ratio(mine)
        lines.append(f"| {k} | {len(mine)} | {sum(c['predicted'] for c in mine):.3f} | "
                     f"{sum(c['measured'] for c in mine):.3f} | {r:.2f} [{lo:.2f}, {hi:.2f}] |")
    lines += ["", "Multiplier ladder:", "", "| multiplier | predicted fraction | measured fraction | error |",
              "|---|---|---|---|"]
    for m, a in zip(MULTIPLIERS, ladder):
        lines.append(f"| {m:g} | {predicted[a]:.3f} | {measured[a]:.3f} | {measured[a] / predicted[a]:.3f} |")
    return "\n".join(lines) + "\n"


def dispersion(rounds: list[dict], per_set: int) -> tuple[float, float] | None:
    """How far two tables built from disjoint fresh rounds disagree when each keeps the fastest of ``per_set``
    rounds: mean over the ways to draw two disjoint sets of the median and 90th percentile, over entries,
    of |log(ratio)|. None when there are fewer than 2 x ``per_set`` rounds."""
    if len(rounds) < 2 * per_set:
        return None
    keys = sorted(set.intersection(*(set(q["ms"]) for q in rounds)))
    med, p90 = [], []
    for a in itertools.combinations(range(len(rounds)), per_set):
        for b in itertools.combinations([i for i in range(len(rounds)) if i not in a], per_set):
            fa, fb = ({k: min(rounds[i]["ms"][k] for i in s) for k in keys} for s in (a, b))
            d = sorted(abs(math.log(fa[k] / fb[k])) for k in keys)
            med.append(statistics.median(d))
            p90.append(d[min(len(d) - 1, int(0.9 * len(d)))])
    return statistics.fmean(med), statistics.fmean(p90)


def entry_report(stored: dict[str, float], rounds: list[dict], start_keys: set[str]) -> str:
    """The stored entries against the median of fresh rounds: their ratio per group, and the worst ones."""
    fresh = {k: statistics.median(q["ms"][k] for q in rounds if k in q["ms"]) for k in stored}
    spread = {k: max(v) / min(v) for k in stored if len(v := [q["ms"][k] for q in rounds if k in q["ms"]]) > 1}
    ratio = {k: stored[k] / fresh[k] for k in stored}
    lines = [f"Entries: the stored value over the median of {len(rounds)} fresh rounds (1: the table holds what "
             "timing now gives; > 1: stored slower). Round spread: slowest over fastest fresh round.", "",
             "| entries | count | median ratio | 10th-90th percentile | share off by > 20% | median round spread |",
             "|---|---|---|---|---|---|"]
    for name, keys in (("of the start network", sorted(k for k in stored if k in start_keys)),
                       ("added by cuts and ladder", sorted(k for k in stored if k not in start_keys)),
                       ("all", sorted(stored))):
        if not keys:
            continue
        rs = sorted(ratio[k] for k in keys)
        q = statistics.quantiles(rs, n=10) if len(rs) > 1 else [rs[0]] * 9
        off = sum(abs(r - 1) > 0.2 for r in rs) / len(rs)
        sp = statistics.median(spread[k] for k in keys) if all(k in spread for k in keys) else float("nan")
        lines.append(f"| {name} | {len(rs)} | {statistics.median(rs):.2f} | {q[0]:.2f}-{q[-1]:.2f} | "
                     f"{100 * off:.0f}% | {sp:.2f} |")
    disp = [(n, d) for n in (1, 2) if (d := dispersion(rounds, n))]
    if disp:
        lines += ["", "Two tables from disjoint fresh rounds (each round keeps the fastest of the table's passes), "
                  "by how many rounds each keeps the fastest of: how far they disagree per entry.", "",
                  "| fastest of rounds | median \\|log ratio\\| | 90th percentile |", "|---|---|---|"]
        lines += [f"| {n} | {m:.3f} | {q:.3f} |" for n, (m, q) in disp]
    worst = sorted(stored, key=lambda k: -abs(math.log(ratio[k])))[:5]
    lines += ["", "| entry (worst 5) | stored ms | fresh ms (median) | ratio |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {stored[k]:.3f} | {fresh[k]:.3f} | {ratio[k]:.2f} |" for k in worst]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    from core import compose, plain, quiet_warnings
    from measure import latency_model
    from space import format_arch, parse_arch, scale_width

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, nargs="+",
                    default=sorted((HERE.parents[1] / "results" / "sweep" / "netadapt").glob("sweep-v3_small-b0.6-s*")))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--entries", type=int, default=0, metavar="R", help="also time every entry again, R rounds")
    args, overrides = ap.parse_known_args(argv)
    args.runs, overrides = split_overrides(args.runs, overrides)
    quiet_warnings()
    if not args.runs:
        raise UserError("no run folders: pass --runs results/sweep/netadapt/<run> ...")
    runs = {r.name: trajectory(r) for r in args.runs}
    start = next(iter(runs.values()))[0]["arch"]
    if any(t[0]["arch"] != start for t in runs.values()):
        raise UserError("the runs start from different networks; pass the runs of one start")
    ladder = [format_arch(scale_width(parse_arch(start), m)) if m != 1.0 else start for m in MULTIPLIERS]
    nets = sorted({start, *ladder} | {r["arch"] for t in runs.values() for r in t})

    cfg = plain(compose("netadapt", overrides))
    model = latency_model({**cfg["latency"], "source": "lut"}, Path(str(cfg["results_dir"])))
    model.prepare()
    raw = {a: model(parse_arch(a)) for a in nets}
    predicted = {a: v / raw[start] for a, v in raw.items()}

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "netadapt_table_error.jsonl"
    table = model.table

    def time_networks(bar):
        timed = table.measure_networks([parse_arch(a) for a in nets], progress=bar)
        return {a: t["as_timed_ms"] for a, t in zip(nets, timed)}

    done = timed_rounds(path, args.rounds, {"start": start, "model": model.name}, set(nets), time_networks,
                        table.passes * len(nets), desc="networks")
    text = report(runs, ladder, predicted, done, start)
    if args.entries:
        text += "\n" + time_entries(model.table, nets, start, args.entries, args.out)
    cal = model.table.calibration or {}
    if cal.get("errors"):
        text += (f"\nThe table's own fit on its calibration set ({len(cal['errors'])} networks timed end to end): "
                 f"relative errors {100 * min(cal['errors']):+.0f}% to {100 * max(cal['errors']):+.0f}%, median "
                 f"|error| {100 * statistics.median(abs(e) for e in cal['errors']):.0f}%.\n")
    md = args.out / "netadapt_table_error.md"
    print(write_report(md, text) + f"\nwritten: {md}")


def time_entries(table, nets: list[str], start: str, rounds: int, out: Path) -> str:
    """``--entries``: every entry of ``nets`` timed afresh in ``rounds`` rounds (resumable), against the table."""
    from measure import arch_entries
    from space import parse_arch

    entries = list({e.key: e for a in nets for e in arch_entries(parse_arch(a), table.input_size)}.values())
    keys = {e.key for e in entries}
    done = timed_rounds(out / "netadapt_table_error_entries.jsonl", rounds, {}, keys,
                        lambda bar: {k: v["ms"] for k, v in table.time_entries(entries, progress=bar).items()},
                        table.passes * len(keys), desc="entries")
    stored = {e.key: table.entries[e.key][table.statistic] for e in entries if e.key in table.entries}
    return entry_report(stored, done, {e.key for e in arch_entries(parse_arch(start), table.input_size)})


if __name__ == "__main__":
    from core import run

    run(main)  # bad input: one line, exit 2
