"""Does a whole network's timing convert more reproducibly by a probe of its own size? (issue 27: eager torch's
V3-Small was timed 5.66-5.71 ms while two tables were built and 6.03-6.14 ms when they were validated, every
network timed paired with MobileNetV3-Large.)

Per run, in a fresh process: ``--n`` seeded random ``v3_small`` and ``--n`` random ``v3_large`` networks (the same in
every run), each timed paired with MobileNetV3-Large and then with MobileNetV3-Small as a table times a whole
network (``measure.time_paired``: 10 calls of one, 10 of the other, 8 times, the median ratio of their p10s); runs
``--gap`` seconds apart. A network's
figure by each conversion, in the probes' units (constant across runs, so they cancel in a change):

- *large probe*: its ratio to V3-Large (what a table does today);
- *small probe*: its ratio to V3-Small;
- *nearest*: the ratio to the probe whose latency lies nearer its own (log scale);
- *interpolated*: the two ratios' geometric mean weighted by where its own latency lies between the two
  probes' (log scale, 0 at V3-Small's and below, 1 at V3-Large's and above; ``measure.size_weight``), so a network
  that shrinks past V3-Small's latency does not jump from one probe to the other. Tables convert this way from
  format 4.

Reported per conversion and kind of network: |run j / run i - 1| over every two runs (median, 90th percentile,
share within 3%); and per network, whether its median |change| interpolated is lower than by the large probe alone
(a sign test over networks).

    taskset -c 1 python -m benchmarks.latency_lut.size_probe [--backends torch onnxruntime] [--runs 5] [--gap 120]

Appends one JSON line per run to ``size_probe.jsonl`` (a killed session resumes: runs already there count) and
rewrites ``size_probe.md``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import append_jsonl, by_session, read_jsonl, write_report
from benchmarks.latency_lut.probe_protocol import quantile, sign, sign_p
from core import quiet_warnings

HERE = Path(__file__).resolve().parent
CONVERSIONS = ("large probe", "small probe", "nearest", "interpolated")


def one_run(backend: str, n: int, seed: int = 7) -> list[dict]:
    """Time the networks of a run here (see the module note); one row per network."""
    quiet_warnings()
    import torch

    from measure import make_runner, time_paired
    from space import V3_LARGE, V3_SMALL, load_space

    torch.set_num_threads(1)
    shape = (1, 3, 224, 224)
    large = make_runner(V3_LARGE, backend=backend, shape=shape)
    small = make_runner(V3_SMALL, backend=backend, shape=shape)
    rng = random.Random(seed)
    archs = [(space, load_space(space).sample(rng)) for space in ("v3_small", "v3_large") for _ in range(n)]
    rows = []
    for space, arch in archs:
        run = make_runner(arch, backend=backend, shape=shape)
        lat, large_ms, sized = time_paired(run, large, backend=backend, warmup=10, small=small)
        row = {"space": space, "ms": round(lat.p10_ms, 5), "large": round(lat.p10_ms / large_ms, 6),
               "large_ms": round(large_ms, 5), "small": round(sized["ratio"], 6), "small_ms": round(sized["ms"], 5)}
        rows.append(row)
    return rows


def change(a: dict, b: dict, how: str) -> float:
    """|b / a - 1| for one network's two runs by conversion ``how`` (its weight is set by the first run)."""
    if how == "large probe":
        return abs(b["large"] / a["large"] - 1)
    if how == "small probe":
        return abs(b["small"] / a["small"] - 1)
    from measure import size_weight

    w = size_weight(a["ms"], a["small_ms"], a["large_ms"])
    if how == "nearest":
        p = "large" if w >= 0.5 else "small"
        return abs(b[p] / a[p] - 1)
    return abs((b["small"] / a["small"]) ** (1 - w) * (b["large"] / a["large"]) ** w - 1)


def changes(runs: list[dict], how: str) -> dict[int, list[float]]:
    """Per network (its index), its |change| over every two runs."""
    out: dict[int, list[float]] = {}
    for r1, r2 in itertools.combinations(runs, 2):
        for i, (a, b) in enumerate(zip(r1["rows"], r2["rows"])):
            out.setdefault(i, []).append(change(a, b, how))
    return out


def report(records: list[dict]) -> str:
    lines = ["# Converting by a probe of the network's own size", "",
             "`python -m benchmarks.latency_lut.size_probe` (module docstring): the same seeded random networks timed "
             "paired with MobileNetV3-Large and with MobileNetV3-Small, once per run, each run a fresh process; "
             "|change| is |run j / run i - 1| over every two runs of a session, per network.", ""]
    for (session, backend), runs in by_session(records).items():
        if len(runs) < 2:
            continue
        kinds = [row["space"] for row in runs[0]["rows"]]
        lines += [f"## {backend}, session {session}", "",
                  f"{len(runs)} runs ({', '.join(r['date'][-5:] for r in runs)} UTC), {len(kinds)} networks; "
                  f"the small/large probe ratio ranged {min(s['small_ms'] / s['large_ms'] for r in runs for s in r['rows']):.3f}-"
                  f"{max(s['small_ms'] / s['large_ms'] for r in runs for s in r['rows']):.3f} over the session's timings.", "",
                  "| conversion | networks | abs change: median | 90th pct | within 3% |", "|---|---|---|---|---|"]
        per = {how: changes(runs, how) for how in CONVERSIONS}
        for how in CONVERSIONS:
            for kind in ("v3_small", "v3_large"):
                d = [x for i, v in per[how].items() if kinds[i] == kind for x in v]
                lines.append(f"| {how} | random {kind} | {statistics.median(d):.1%} | {quantile(d, .9):.1%} | "
                             f"{sum(x <= 0.03 for x in d) / len(d):.0%} |")
        for kind in ("v3_small", "v3_large"):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            lower = sum(statistics.median(per["interpolated"][i]) < statistics.median(per["large probe"][i]) for i in idx)
            verdict = "shown lower" if sign_p(lower, len(idx)) < 0.05 else "no difference shown"
            lines += ["", f"Random `{kind}`: interpolated, a network's median |change| was lower than by the large "
                      f"probe alone for {sign(lower, len(idx)).replace('runs', 'networks')}: {verdict}."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gap", type=float, default=120.0, help="seconds between a backend's runs")
    ap.add_argument("--n", type=int, default=8, help="networks per space")
    ap.add_argument("--session", default=time.strftime("%Y-%m-%d", time.gmtime()),
                    help="runs of one session are compared with each other; a rerun with the same session resumes")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a run's child process: its rows as JSON on stdout
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one_run(args.one, args.n)))
        return 0
    jsonl = args.out / "size_probe.jsonl"
    for k in range(args.runs):
        timed = False
        for backend in args.backends:
            done = [r for r in read_jsonl(jsonl) if r["session"] == args.session and r["backend"] == backend]
            if len(done) > k:
                continue
            out = subprocess.run([sys.executable, "-m", "benchmarks.latency_lut.size_probe", "--one", backend,
                                  "--n", str(args.n)], check=True, capture_output=True, text=True).stdout
            append_jsonl(jsonl, {"session": args.session, "backend": backend, "n": args.n,
                                 "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                 "rows": json.loads(out.splitlines()[-1])})
            print(f"size_probe: {backend} run {k + 1} of {args.runs} written to {jsonl}", flush=True)
            timed = True
        if timed and k < args.runs - 1:
            time.sleep(args.gap)
    write_report(args.out / "size_probe.md", report(read_jsonl(jsonl)))
    print(f"wrote {args.out / 'size_probe.md'}")
    return 0


if __name__ == "__main__":
    from core import run as run_cli

    run_cli(main)
