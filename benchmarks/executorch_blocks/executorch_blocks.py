"""How per-block costs rank under onnxruntime and under ExecuTorch + XNNPACK (issue 13).

One V3-Large block position, the second 40-channel block at 28x28 (input 40 channels, expand 120, out
40, stride 1, residual), in its eight variants: kernel 3|5 x SE off|on x ReLU|h-swish; and MobileNetV3
Small and Large at 224 end to end. Each is timed on both backends, one thread, in ``--passes`` shuffled
sweeps keeping the fastest, as the latency table does: wall clock (``time_runner``: p10 and median of
``--repeats`` runs after ``--warmup``) and the CPU time of the calling thread per run (median of
``--repeats`` runs; one thread runs the whole forward pass on both backends), which a CPU-starved
process does not inflate. No probe conversion: every figure is as timed, so the load average before and
after and the share of a core this process got are reported. Also times what a runner costs to build
(export, plus lowering and loading for ExecuTorch) from an empty program cache, wall and CPU seconds.
Writes benchmarks/executorch_blocks/executorch_blocks.md. Needs the executorch extra.

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.executorch_blocks.executorch_blocks [--passes 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import statistics
import tempfile
import time
from itertools import product
from pathlib import Path

import torch

from core import quiet_warnings
from space import V3_LARGE, V3_SMALL, BlockSpec, load_space

quiet_warnings()
from measure import arch_entries, block_entry, full_set, make_runner, network_entry, space_entries, time_runner  # noqa: E402

BACKENDS = ("onnxruntime", "executorch")
CIN, SIDE, EXPAND = 40, 28, 120  # V3-Large block 5 (index 4): k5 e120 o40 SE RE at 28x28
CHOICES = {"SE on / off": ("se", False, True), "HS / RE": ("act", "RE", "HS"), "k5 / k3": ("kernel", 3, 5)}


def variants() -> list[BlockSpec]:
    return [BlockSpec(k, EXPAND, CIN, se, act, 1) for k, se, act in product((3, 5), (False, True), ("RE", "HS"))]


def label(b: BlockSpec) -> str:
    return f"k{b.kernel} {'SE' if b.se else '--'} {b.act}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).with_name("executorch_blocks.md")))
    args = p.parse_args()
    os.environ["BNECK_ET_CACHE"] = tempfile.mkdtemp(prefix="bneck-et-")  # every lowering timed from scratch
    load_before = os.getloadavg()

    items = [(label(b), block_entry(CIN, SIDE, b)) for b in variants()]
    items += [(name, network_entry(a, 224)) for name, a in (("V3-Small", V3_SMALL), ("V3-Large", V3_LARGE))]
    runners, build_s = {}, {}
    for (name, entry), backend in product(items, BACKENDS):
        t0, c0 = time.perf_counter(), time.thread_time()
        runners[name, backend] = make_runner(entry.build(), backend=backend, shape=entry.input_shape(1),
                                             name=entry.key)
        build_s[name, backend] = (time.perf_counter() - t0, time.thread_time() - c0)
        print(f"built {name} / {backend}: {build_s[name, backend][0]:.1f} s wall, "
              f"{build_s[name, backend][1]:.1f} s CPU", flush=True)

    best: dict[tuple[str, str], dict] = {}
    keys = list(runners)
    t0, c0 = time.perf_counter(), time.process_time()
    for p_ in range(args.passes):
        random.Random(p_).shuffle(keys)
        for key in keys:
            lat = time_runner(runners[key], backend=key[1], warmup=args.warmup, repeats=args.repeats, max_rounds=1)
            cpu = cpu_ms(runners[key], args.repeats)
            old = best.get(key, {"p10": math.inf, "median": math.inf, "cpu": math.inf})
            best[key] = {"p10": min(old["p10"], lat.p10_ms), "median": min(old["median"], lat.median_ms),
                         "cpu": min(old["cpu"], cpu)}
            print(f"pass {p_ + 1}: {key[0]} / {key[1]}: p10 {lat.p10_ms:.3f} ms, CPU {cpu:.3f} ms", flush=True)
    share = (time.process_time() - c0) / (time.perf_counter() - t0)
    load_after = os.getloadavg()
    Path(args.out).write_text(report(items, best, build_s, args, load_before, load_after, share))
    print(f"wrote {args.out}")


def cpu_ms(run, repeats: int) -> float:
    """Median CPU time (ms) of the calling thread per run."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            c0 = time.thread_time()
            run()
            times.append(time.thread_time() - c0)
    return statistics.median(times) * 1e3


def report(items, best, build_s, args, load_before, load_after, share) -> str:
    blocks = [name for name, e in items if e.key.startswith("block_")]
    out = ["# Per-block costs: onnxruntime vs ExecuTorch + XNNPACK", "",
           "Written by `benchmarks/executorch_blocks/executorch_blocks.py` (issue 13). One thread, batch 1, this 2-core VM shared "
           "with other jobs: load average (1, 5, 15 min) "
           f"{', '.join(f'{v:.2f}' for v in load_before)} before, {', '.join(f'{v:.2f}' for v in load_after)} after. "
           f"While timing, this process got {share:.0%} of a core (CPU time / wall time): the machine's other jobs "
           f"run at a higher priority, so wall-clock figures include waiting; the CPU-time column does not. "
           f"Each figure is the fastest of {args.passes} shuffled timings ({args.warmup} warm-up runs, then "
           f"{args.repeats} timed), as timed (no probe conversion). Block: input 40 channels at 28x28, expand 120, "
           "out 40, stride 1 (residual), the position of V3-Large's fifth block (k5 SE RE there).", "",
           "## Block variants (ms per forward pass: wall p10 / wall median / CPU median)", "",
           "| variant | onnxruntime | executorch | executorch / onnxruntime (CPU) |", "|---|---|---|---|"]
    for name in blocks:
        o, e = best[name, "onnxruntime"], best[name, "executorch"]
        out.append(f"| {name} | {fmt(o)} | {fmt(e)} | {e['cpu'] / o['cpu']:.2f} |")
    for stat, what in (("cpu", "CPU median"), ("p10", "wall p10")):
        out += ["", f"## Rank (cheapest first, {what}, ms)", ""]
        for backend in BACKENDS:
            ranked = sorted(blocks, key=lambda n: best[n, backend][stat])
            out.append(f"- {backend}: " + " < ".join(f"{n} ({best[n, backend][stat]:.3f})" for n in ranked))
    out += ["", "## Cost ratio of each choice (CPU median; wall p10 in brackets), per pair of variants that differ "
            "in it only", "", "| choice | pair (the other two choices) | onnxruntime | executorch |",
            "|---|---|---|---|"]
    specs = {label(b): b for b in variants()}
    for choice, (field, off, on) in CHOICES.items():
        ratios = {b: [] for b in BACKENDS}
        for name, b in specs.items():
            if getattr(b, field) != off:
                continue
            partner = label(dataclasses.replace(b, **{field: on}))
            rest = " ".join(t for t in name.split() if t not in (label_part(field, off),))
            row = [{st: best[partner, be][st] / best[name, be][st] for st in ("cpu", "p10")} for be in BACKENDS]
            for be, r in zip(BACKENDS, row):
                ratios[be].append(r)
            out.append(f"| {choice} | {rest} | {row[0]['cpu']:.3f} ({row[0]['p10']:.3f}) | "
                       f"{row[1]['cpu']:.3f} ({row[1]['p10']:.3f}) |")
        gm = [{st: math.exp(statistics.fmean(math.log(r[st]) for r in ratios[be])) for st in ("cpu", "p10")}
              for be in BACKENDS]
        out.append(f"| {choice} | geometric mean | **{gm[0]['cpu']:.3f}** ({gm[0]['p10']:.3f}) | "
                   f"**{gm[1]['cpu']:.3f}** ({gm[1]['p10']:.3f}) |")
    out += ["", "## End to end at 224 (ms per forward pass: wall p10 / wall median / CPU median)", "",
            "| network | onnxruntime | executorch | executorch / onnxruntime (CPU) |", "|---|---|---|---|"]
    for name in ("V3-Small", "V3-Large"):
        o, e = best[name, "onnxruntime"], best[name, "executorch"]
        out.append(f"| {name} | {fmt(o)} | {fmt(e)} | {e['cpu'] / o['cpu']:.2f} |")
    out += ["", "## What a runner costs to build (s, wall / CPU; ExecuTorch: export + lowering + load, empty cache)",
            "", "| item | onnxruntime | executorch |", "|---|---|---|"]
    for name, _ in items:
        (ow, oc), (ew, ec) = build_s[name, "onnxruntime"], build_s[name, "executorch"]
        out.append(f"| {name} | {ow:.2f} / {oc:.2f} | {ew:.2f} / {ec:.2f} |")
    first = items[0][0]
    per_block = [build_s[n, "executorch"][1] for n in blocks if n != first]  # the first pays one-time setup
    n_entries = len({e.key for e in space_entries(load_space("v3_large"), 224)}
                    | {e.key for a in full_set() for e in arch_entries(a, 224)})
    n_nets = len(full_set())
    per_net = (build_s["V3-Small", "executorch"][1] + build_s["V3-Large", "executorch"][1]) / 2
    out += ["", f"The first ExecuTorch item ({first}) includes one-time setup of the lowering code. "
            f"Estimated lowering cost of `python -m measure.lut build +space=v3_large latency.backend=executorch` "
            f"from an empty cache, in CPU seconds (wall on an idle core): {n_entries} entries x "
            f"{sum(per_block) / len(per_block):.1f} s (mean of the "
            f"other block variants) + {n_nets} calibration networks + the probe (V3-Large) x {per_net:.0f} s "
            f"(mean of V3-Small and V3-Large) = about "
            f"{(n_entries * sum(per_block) / len(per_block) + (n_nets + 1) * per_net) / 60:.0f} min, once: the "
            f"programs are cached, so the table's second pass and later runs lower nothing. Timing comes on top, "
            f"as for onnxruntime.", ""]
    return "\n".join(out)


def fmt(r: dict) -> str:
    return f"{r['p10']:.4f} / {r['median']:.4f} / {r['cpu']:.4f}"


def label_part(field: str, value) -> str:
    return {"se": "SE" if value else "--", "act": str(value), "kernel": f"k{value}"}[field]


if __name__ == "__main__":
    main()
