"""NetAdapt vs the width multiplier, a sweep: budgets 0.9 / 0.75 / 0.6 x 3 seeds from MobileNetV3-Small and -Large.

    python -m benchmarks.netadapt_vs_multiplier.netadapt_vs_multiplier [--starts v3_small v3_large] [--budgets 0.9 0.75 0.6]
        [--seeds 0 1 2] [--out benchmarks] [key=value ...]   # extra conf/netadapt.yaml overrides

Each (start, budget, seed) is one ``python -m netadapt.run`` in-process (run_name ``sweep-<start>-b<budget>-s<seed>``,
so a rerun resumes it), budgets from the highest down, each run continuing the previous budget's
(``continue_from``: NetAdapt's iterations do not depend on the budget, so the sweep trains each iteration once,
about 1 - 0.6 = 40 % of the start per seed instead of 10 + 25 + 40 = 75 %),
on the proxy task of ``conf/netadapt.yaml`` (digits, 32 px) with its defaults: NetAdapt
shrinks against the latency table's prediction, and at the end the final network and the width-multiplier
baseline (same training steps) are timed end to end (``summary.json`` ``measured``). One line per finished run
goes to ``<out>/netadapt_vs_multiplier.jsonl`` (rerun to resume); ``<out>/netadapt_vs_multiplier.md`` and
``.png`` are rewritten from all lines.

Per start and budget, over seeds (mean and 95% t-interval over the seeds):
Latency is measured ms brought to one speed per start network: each run's final network and baseline as fractions
of its start network (timed in the same rounds), times the median start timing over the runs (``_at_common_speed``).
``--retime R`` (after the runs) times every network of the sweep again, all of one start network together, in R
rounds (``measure_networks``: shuffled sweeps over all of them); a network's latency is then the median over rounds
of its time over the start's in the same round, times the start's median: one session's timings instead of each
run's two, where the host allows (``benchmarks/host_noise/host_noise.md``). One line per round goes to
``<out>/netadapt_vs_multiplier_timing.jsonl`` (resumes); the report uses those rounds when there are any.
- ``diff``: NetAdapt test top-1 minus the multiplier's at NetAdapt's measured latency (the multiplier's test top-1
  interpolated linearly in measured latency between its points of the same seed; the nearest point outside them);
- ``ratio``: the multiplier's measured latency at NetAdapt's test top-1 (interpolated likewise on the multiplier's
  points of the seed) over NetAdapt's measured latency: > 1 means NetAdapt is faster at equal accuracy.
Cost: a default run is budget-dependent, about (1 - budget) / step iterations x ~13 proposals x short_steps
steps; the full sweep is many hours on 2 cores. Each row records its ``step`` and the table shows it: from
MobileNetV3-Large (about 20 proposals of ~450 s per iteration here) the paper's step 0.01 costs about 5 core-hours
per seed to budget 0.6, so the committed sweep ran it with ``step=0.025`` (16 iterations instead of 40).
"""
from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from benchmarks.common import append_jsonl, bracket, read_jsonl, split_overrides, write_report
from search import stats as st

HERE = Path(__file__).resolve().parent
ONE_SEED = " (one seed: no interval)"


def _start_archs() -> dict[str, str]:
    from space import V3_LARGE, V3_SMALL, format_arch

    return {"v3_small": format_arch(V3_SMALL), "v3_large": format_arch(V3_LARGE)}


START_ARCH = _start_archs()  # the start networks --retime times beside the runs' networks


def record(out, start: str, budget: float, seed: int, step: float) -> dict:
    s, b = out.summary, out.baseline
    m = s["measured"]
    return {"start": start, "budget": budget, "seed": seed, "step": step, "latency_model": s["latency_model"],
            "measured_by": m["latency_model"], "iterations": s["final"]["iterations"],
            "netadapt": {"arch": s["final"]["arch"], "top1": s["final"]["top1"], "test_top1": s["final"]["test_top1"],
                         "predicted_ms": s["final"]["latency_ms"], "measured_ms": m["final"]["measured_ms"]},
            "multiplier": {"m": b["multiplier"], "arch": b["arch"], "top1": b["top1"], "test_top1": b["test_top1"],
                           "predicted_ms": b["latency_ms"], "measured_ms": m["baseline"]["measured_ms"]},
            "start_measured_ms": m["start"]["measured_ms"], "train_steps": s["final"]["train_steps"]}


def interp(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise-linear y at x through the points (xs, ys) sorted by x; the nearest point's y outside them."""
    pts = sorted(zip(xs, ys))
    if x <= pts[0][0]:
        return pts[0][1]
    if x >= pts[-1][0]:
        return pts[-1][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise AssertionError("unreachable")


def latency_at(acc: float, lats: list[float], accs: list[float]) -> float | None:
    """The smallest latency at which the piecewise-linear curve (by latency) reaches ``acc``; None if never."""
    pts = sorted(zip(lats, accs))
    if pts[0][1] >= acc:
        return pts[0][0]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y0 < acc <= y1:
            return x0 + (x1 - x0) * (acc - y0) / (y1 - y0)
    return None


def summarise(rows: list[dict], rounds: list[dict] = ()) -> tuple[list[dict], object]:
    """Per (start, budget): diff and ratio with intervals; and the figure's info. Latencies from the
    ``--retime`` ``rounds`` where they cover a run, else each run's own timings at a common speed."""
    from plots import Curve, VersusInfo

    table, panels = [], []
    for start in sorted({r["start"] for r in rows}):
        rs = [_retimed(r, rounds) or _at_common_speed(r, [q for q in rows if q["start"] == start])
              for r in rows if r["start"] == start]
        budgets = sorted({r["budget"] for r in rs}, reverse=True)
        curves = {"netadapt": [], "multiplier": []}
        for budget in budgets:
            diffs, ratios = [], []
            here = [r for r in rs if r["budget"] == budget]
            for r in here:
                mine = [q for q in rs if q["seed"] == r["seed"]]
                lats = [q["multiplier"]["measured_ms"] for q in mine]
                accs = [q["multiplier"]["test_top1"] for q in mine]
                na = r["netadapt"]
                diffs.append(na["test_top1"] - interp(na["measured_ms"], lats, accs))
                lat = latency_at(na["test_top1"], lats, accs)
                if lat is not None:
                    ratios.append(lat / na["measured_ms"])
            row = {"start": start, "budget": budget, "seeds": len(here), "diff": st.mean_interval(diffs),
                   "step": "/".join(sorted({f"{r['step']:g}" if r.get("step") else "?" for r in here})),
                   "ratio": st.mean_interval(ratios) if ratios else None, "ratio_seeds": len(ratios)}
            for name in curves:
                row[name] = (st.mean_interval([r[name]["measured_ms"] for r in here]),
                             st.mean_interval([r[name]["test_top1"] for r in here]))
                curves[name].append(row[name])
            table.append(row)
        panels.append((start, tuple(
            Curve(label, tuple(p[0][0] for p in pts), tuple(_finite(p[0][1]) for p in pts),
                  tuple(p[1][0] for p in pts), tuple(_finite(p[1][1]) for p in pts))
            for label, pts in (("NetAdapt", curves["netadapt"]), ("width multiplier", curves["multiplier"])))))
    return table, VersusInfo("NetAdapt vs width multiplier (mean, 95% interval over seeds)",
                             tuple(panels))


def _retimed(r: dict, rounds: list[dict]) -> dict | None:
    """``r`` with latencies from the ``--retime`` rounds of its start (module note); None without such rounds."""
    start = START_ARCH.get(r["start"])
    mine = [q["ms"] for q in rounds if q["start"] == r["start"] and start in q["ms"]]
    if not mine:
        return None
    unit = statistics.median(q[start] for q in mine)
    out = dict(r)
    for k in ("netadapt", "multiplier"):
        ratios = [q[r[k]["arch"]] / q[start] for q in mine if r[k]["arch"] in q]
        if not ratios:
            return None
        out[k] = {**r[k], "measured_ms": statistics.median(ratios) * unit, "rounds": len(ratios)}
    return out


def retime(rows: list[dict], overrides: list[str], rounds: int, path: Path) -> None:
    """Time every network of each start's runs in ``rounds`` rounds, one JSON line per round (module note)."""
    from benchmarks.common import timed_rounds
    from core import compose, plain
    from measure import latency_model
    from space import parse_arch

    for start in sorted({r["start"] for r in rows if r["start"] in START_ARCH}):
        nets = sorted({START_ARCH[start]} | {r[k]["arch"] for r in rows if r["start"] == start
                                             for k in ("netadapt", "multiplier")})
        cfg = plain(compose("netadapt", [f"start={start}", *overrides]))
        model = latency_model({**cfg["latency"], "source": "measured"}, Path(str(cfg["results_dir"])))
        model.prepare()

        def time_once(bar, nets=nets, table=model.table):
            timed = table.measure_networks([parse_arch(a) for a in nets], progress=bar)
            return {a: t["as_timed_ms"] for a, t in zip(nets, timed)}

        timed_rounds(path, rounds, {"start": start, "model": model.name}, set(nets), time_once,
                     model.table.passes * len(nets), desc=f"retime {start}")


def _at_common_speed(r: dict, runs: list[dict]) -> dict:
    """``r`` with its measured latencies as fractions of its start network's, timed in the same rounds, times
    the median start timing over ``runs``. Runs timed at different moments then compare: on a shared VM the same
    start timed 1.96 and 3.09 ms in two runs an hour apart, converted to the table's unit all the same.
    Rows without ``start_measured_ms`` are kept as timed."""
    starts = [q["start_measured_ms"] for q in runs if q.get("start_measured_ms")]
    if not r.get("start_measured_ms") or not starts:
        return r
    unit = statistics.median(starts) / r["start_measured_ms"]
    return {**r, **{k: {**r[k], "measured_ms": r[k]["measured_ms"] * unit} for k in ("netadapt", "multiplier")}}


def _finite(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def timing_sources(rows: list[dict], rounds: list[dict]) -> str:
    """Per start network, where the table's latencies come from: ``--retime`` rounds or the runs' own timings."""
    said = []
    for start in sorted({r["start"] for r in rows}):
        retimed = [_retimed(r, rounds) for r in rows if r["start"] == start]
        if all(retimed):
            n = min(r[k]["rounds"] for r in retimed for k in ("netadapt", "multiplier"))
            said.append(f"{start}: from `--retime` ({n} rounds of every network, "
                        "`netadapt_vs_multiplier_timing.jsonl`)")
        else:
            said.append(f"{start}: from the runs' own timings (not retimed)")
    return "Here " + "; ".join(said) + "."


def write(rows: list[dict], out: Path, overrides: list[str], rounds: list[dict] = ()) -> str:
    from plots import draw_versus

    table, info = summarise(rows, rounds)
    lines = ["# NetAdapt vs width multiplier at equal measured latency", "",
             "`python -m benchmarks.netadapt_vs_multiplier.netadapt_vs_multiplier " + " ".join(overrides) + "` (results: "
             "`netadapt_vs_multiplier.jsonl`, figure `netadapt_vs_multiplier.png`). Test top-1 is reported only; "
             "NetAdapt selected on holdout. Mean over seeds, 95% t-interval in brackets. Latency: each run times its "
             "start, final network and multiplier baseline in turn; a network's ms are its fraction of that run's "
             "start timing times the median start timing over the runs of the start network, so runs timed an "
             "hour apart compare. " + timing_sources(rows, rounds), "",
             "| start | budget | step | seeds | NetAdapt ms (measured) | multiplier ms | NetAdapt test top-1 | "
             "multiplier test top-1 | diff at equal latency (points) | latency ratio at equal accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        (nl, nlh), (na, nah) = r["netadapt"]
        (ml, mlh), (ma, mah) = r["multiplier"]
        ratio = "never reached" if r["ratio"] is None else (
            bracket(*r["ratio"], ".3f", ONE_SEED)
            + (f" ({r['ratio_seeds']} of {r['seeds']} seeds)" if r["ratio_seeds"] < r["seeds"] else ""))
        lines.append(f"| {r['start']} | {r['budget']:g} | {r['step']} | {r['seeds']} | {nl:.3f} | {ml:.3f} | "
                     f"{100 * na:.1f}% | {100 * ma:.1f}% | "
                     f"{bracket(100 * r['diff'][0], 100 * r['diff'][1], '+.2f', ONE_SEED)} | {ratio} |")
    text = "\n".join(lines) + "\n"
    write_report(out / "netadapt_vs_multiplier.md", text)
    (out / "netadapt_vs_multiplier.png").write_bytes(draw_versus(info))
    return text


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options and the ``key=value`` overrides, wherever they stand."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", nargs="+", default=["v3_small", "v3_large"])
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.9, 0.75, 0.6])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--retime", type=int, default=0, metavar="R",
                    help="after the runs, time all networks of each start together in R rounds (module note)")
    args, overrides = ap.parse_known_args(argv)
    args.starts, overrides = split_overrides(args.starts, overrides)  # `--starts v3_small key=value ...`
    return args, overrides


def main(argv: list[str]) -> None:
    from core import compose, plain, quiet_warnings
    from netadapt import run_netadapt

    args, overrides = parse(argv)
    quiet_warnings()
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl = args.out / "netadapt_vs_multiplier.jsonl"
    rows = read_jsonl(jsonl)
    done = {(r["start"], r["budget"], r["seed"]) for r in rows}
    for i, start in enumerate(args.starts):
        name = start if start in ("v3_small", "v3_large") else f"start{i}"
        for seed in args.seeds:
            previous = None  # the run of the next higher budget: its iterations are this one's first ones
            for budget in sorted(args.budgets, reverse=True):
                run_name = f"sweep-{name}-b{budget:g}-s{seed}"
                cont = [f"continue_from={previous}"] if previous is not None and previous.is_dir() else []
                cfg = plain(compose("netadapt", [f"start={start}", f"budget={budget}", f"seed={seed}",
                                                 "baseline=true", "progress=false", f"run_name={run_name}",
                                                 *cont, *overrides]))
                previous = Path(str(cfg["results_dir"])) / "netadapt" / run_name
                if (name, budget, seed) in done:
                    continue
                out = run_netadapt(cfg, progress=False)
                rec = record(out, name, budget, seed, float(cfg["step"]))
                append_jsonl(jsonl, rec)
                rows.append(rec)
                print(rec, flush=True)
    timing = args.out / "netadapt_vs_multiplier_timing.jsonl"
    if args.retime:
        retime(rows, overrides, args.retime, timing)
    # read again: chains of other seeds, run side by side, append their rows to the same file
    print(write(read_jsonl(jsonl), args.out, argv, read_jsonl(timing)))


if __name__ == "__main__":
    from core import run

    run(main)  # bad input: one line, exit 2
