"""How should a block entry be timed so that two builds on a drifting host agree? (issue 27, session 25)

On this VM's busy days the machine's speed moves as a whole: one block's fastest decile per second moved -8% to
+7% in steps of about 3%, and a second block, timed call for call beside it, moved with it (correlation 0.95;
their ratio's sd 1.2% where each moved 2.8-3.6%). A table stores a block as timed (table format 3), the fastest of
its passes, so every block carries the speed of the seconds it was timed in; a build on such a host times a third
to two thirds of its entries again (their two passes differ by more than 3%) and is refused as busy. Timed paired
with a fixed reference block, as whole networks are timed with the probe (``measure.runner.paired_timing``), a block's
ratio would carry only what the machine does to it and not to the reference.

Per pass, every one of ``--n`` blocks sampled from both built-in spaces (seeded, the same every session) in a fresh
shuffled order, each exported afresh as a build does, and timed:

- *as timed*: with the protocol of tables up to format 4 (``measure.time_runner``), its p10, as they stored it;
- *in the probe's unit*: that p10 over the median of the probe's (MobileNetV3-Large) timings during the pass, the
  probe timed every second as a build does (what table format 2 stored);
- *paired*: ``measure.time_paired`` against the reference block (``measure.block_reference``: a block of
  MobileNetV3-Large, cache-resident, about 0.1 ms here; 10 calls of one, 10 of the other, 8 times), the median ratio
  of their p10s: how table format 5 times every entry;
- *alternating* (from session 26): one call of the block, one of the reference block, ``ALTERNATING`` times, and the
  median of the per-call ratios: each ratio compares two calls a fraction of a millisecond apart, where a pair of
  10-call windows spans a millisecond or more (passes before session 26 lack it).

Consecutive passes make "builds" of ``--per-build`` passes each. Per build and way: the share of blocks whose two
fastest passes differ by more than 3% (what a build would time again, and over 10% calls busy), and each block's
figure (fastest pass); over builds, each block's between-build sd (relative), and a sign test over blocks: is it
lower paired than as timed?

    taskset -c 1 python -m benchmarks.latency_lut.block_pairing [--backend onnxruntime] [--n 100] [--seconds 600]

Appends one JSON line per pass to ``block_pairing.jsonl`` (a killed session resumes with the same ``--session``) and
rewrites ``block_pairing.md``.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import append_jsonl, by_session, read_jsonl, write_report
from benchmarks.latency_lut.probe_protocol import quantile, sign_p
from core import quiet_warnings

quiet_warnings()
HERE = Path(__file__).resolve().parent
WAYS = ("as timed", "in the probe's unit", "paired", "alternating")
ALTERNATING = 80  # calls of each side, alternated one by one
CONFIRM = 0.03  # measure.table.CONFIRM


def sample(n: int, seed: int = 25) -> list:
    """``n`` blocks of the built-in spaces (seeded), the reference left out."""
    from measure import space_entries
    from space import SearchSpace, available_spaces

    reference = reference_entry().key
    blocks = {e.key: e for name in available_spaces() for e in space_entries(SearchSpace.load(name), 224)
              if e.key.startswith("block_") and e.key != reference}
    keys = sorted(blocks)
    random.Random(seed).shuffle(keys)
    return [blocks[k] for k in keys[:n]]


def reference_entry():
    from measure import block_reference

    return block_reference()


def alternating(run, ref_run, calls: int = ALTERNATING) -> float:
    """The median over ``calls`` alternations of one call of ``run`` over the call of ``ref_run`` right after it."""
    ratios = []
    for _ in range(calls):
        t0 = time.perf_counter()
        run()
        t1 = time.perf_counter()
        ref_run()
        ratios.append((t1 - t0) / (time.perf_counter() - t1))
    return statistics.median(ratios)


def one_pass(entries: list, backend: str, seed: int, probe, ref_run) -> dict:
    """Time every entry once each way (module note), in an order shuffled by ``seed``; the probe when due."""
    from measure import make_runner, time_paired, time_runner

    order = list(entries)
    random.Random(seed).shuffle(order)
    blocks, probes = {}, [probe.time()]
    for e in order:
        run = make_runner(e.build(), backend=backend, shape=e.input_shape(1), threads=1)
        lat = time_runner(run, backend=backend, threads=1)
        paired, ref_ms, _ = time_paired(run, ref_run, backend=backend, threads=1, warmup=3)
        blocks[e.key] = {"p10": round(lat.p10_ms, 6), "ratio": round(paired.p10_ms / ref_ms, 6), "ref_ms": round(ref_ms, 6),
                         "alternating": round(alternating(run, ref_run), 6)}
        if probe.due():
            probes.append(probe.time())
    return {"blocks": blocks, "probe_ms": [round(p, 5) for p in probes]}


def figures(passes: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per way, per block, its figure in each pass (module note)."""
    out = {w: {} for w in WAYS}
    for p in passes:
        unit = statistics.median(p["probe_ms"])
        for key, b in p["blocks"].items():
            out["as timed"].setdefault(key, []).append(b["p10"])
            out["in the probe's unit"].setdefault(key, []).append(b["p10"] / unit)
            out["paired"].setdefault(key, []).append(b["ratio"])
            if "alternating" in b:
                out["alternating"].setdefault(key, []).append(b["alternating"])
    return out


def builds(values: dict[str, list[float]], per: int) -> tuple[list[float], dict[str, list[float]]]:
    """Cut each block's passes into builds of ``per``: per build the share of blocks a build would time again
    (its two fastest passes more than ``CONFIRM`` apart), and per block its fastest pass in each build."""
    n = min(len(v) for v in values.values()) // per
    again, fastest = [], {k: [] for k in values}
    for b in range(n):
        cut = {k: sorted(v[b * per:(b + 1) * per]) for k, v in values.items()}
        again.append(sum(c[1] > c[0] * (1 + CONFIRM) for c in cut.values()) / len(cut))
        for k, c in cut.items():
            fastest[k].append(c[0])
    return again, fastest


def rel_sd(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.mean(values)


def summary(passes: list[dict], per: int) -> dict:
    """Per way: the builds' shares timed again, and each block's between-build sd; plus the sign test."""
    out = {}
    for way, values in figures(passes).items():
        if not values:  # a session before the way was timed
            continue
        again, fastest = builds(values, per)
        out[way] = {"again": again, "sd": {k: rel_sd(v) for k, v in fastest.items()} if len(again) > 1 else {}}
    return out


def verdict(lower: int, n: int) -> str:
    if n == 0:
        return "not judged (fewer than 2 builds)"
    p = sign_p(lower, n)
    if p < 0.05:
        return f"lower for {lower} of {n} blocks (one-sided sign test p = {p:.2g}): shown lower"
    p_higher = sign_p(n - lower, n)
    if p_higher < 0.05:
        return f"lower for only {lower} of {n} blocks (p = {p_higher:.2g} that it is higher): shown higher"
    return f"lower for {lower} of {n} blocks (p = {p:.2g}): no difference shown"


def report(records: list[dict], per: int) -> str:
    lines = ["# Timing a block paired with a reference block", "",
             "`python -m benchmarks.latency_lut.block_pairing` (module docstring): blocks timed in shuffled passes as a "
             f"build times them, each as timed, in the probe's unit, paired with `{reference_entry().key}` and alternating "
             f"with it call by call; {per} consecutive "
             "passes make a build. *Timed again*: the share of blocks whose two fastest passes in a build differ by "
             "more than 3% (over 10%, `measure.lut build` calls the machine busy); *between builds*: each block's "
             "fastest pass per build, its sd over builds relative to its mean.", ""]
    for (session, backend), passes in by_session(records).items():
        s = summary(passes, per)
        n_builds = len(s["as timed"]["again"])
        lines += [f"## {backend}, session {session}", "",
                  f"{len(passes)} passes ({passes[0]['date'][-5:]}-{passes[-1]['date'][-5:]} UTC), "
                  f"{len(passes[0]['blocks'])} blocks, {n_builds} builds of {per}; the probe's median per pass "
                  f"{min(statistics.median(p['probe_ms']) for p in passes):.3f}-"
                  f"{max(statistics.median(p['probe_ms']) for p in passes):.3f} ms, the reference block's "
                  f"{min(statistics.median(b['ref_ms'] for b in p['blocks'].values()) for p in passes):.4f}-"
                  f"{max(statistics.median(b['ref_ms'] for b in p['blocks'].values()) for p in passes):.4f} ms.", "",
                  "| way | timed again per build: median (range) | between builds, sd per block: median | 90th pct |",
                  "|---|---|---|---|"]
        for way in (w for w in WAYS if w in s):
            again, sd = s[way]["again"], list(s[way]["sd"].values())
            spread = (f"{statistics.median(sd):.2%} | {quantile(sd, .9):.2%}" if sd else "- | -")
            lines.append(f"| {way} | {statistics.median(again):.0%} ({min(again):.0%}-{max(again):.0%}) | {spread} |"
                         if again else f"| {way} | - | - | - |")
        for way, base in [(w, "as timed") for w in WAYS[1:]] + [("alternating", "paired")]:
            if way not in s:
                continue
            a, b = s[base]["sd"], s[way]["sd"]
            lower = sum(b[k] < a[k] for k in a if k in b)
            lines += ["", f"Between builds, {way} against {base}: {verdict(lower, len(a))}."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--n", type=int, default=100, help="blocks per pass")
    ap.add_argument("--seconds", type=float, default=600, help="time passes until this much has passed")
    ap.add_argument("--per-build", type=int, default=2, help="passes per build (a table's latency.passes)")
    ap.add_argument("--session", default=time.strftime("%Y-%m-%d", time.gmtime()), help="resumes a session's passes")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    args = ap.parse_args(argv)
    jsonl = args.out_dir / "block_pairing.jsonl"
    if args.seconds > 0:
        from measure import SpeedProbe, make_runner

        entries, ref = sample(args.n), reference_entry()
        ref_run = make_runner(ref.build(), backend=args.backend, shape=ref.input_shape(1), threads=1)
        probe = SpeedProbe(backend=args.backend, threads=1, input_size=224, batch=1, channels_last=False)
        done = sum(r["session"] == args.session and r["backend"] == args.backend for r in read_jsonl(jsonl))
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            row = one_pass(entries, args.backend, seed=done, probe=probe, ref_run=ref_run)
            append_jsonl(jsonl, {"session": args.session, "backend": args.backend, "pass": done,
                                 "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **row})
            done += 1
            left = end - time.monotonic()
            print(f"pass {done} took {time.monotonic() - t0:.0f} s; about {max(0, left):.0f} s left", flush=True)
    print(write_report(args.out_dir / "block_pairing.md", report(read_jsonl(jsonl), args.per_build)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
