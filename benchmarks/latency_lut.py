"""How well the per-block latency table predicts end-to-end latency, per backend.

For each backend: fill the table for every entry of the v3_large space (resumable, cached under
``results_dir``), calibrate on 8 random points, then predict and measure 50 other random points
(seed 0) end to end; report the share within +-5% / +-10%, and the run-to-run spread of measuring
the reference network several times. Writes benchmarks/latency_lut.md.

    python benchmarks/latency_lut.py [--results-dir results] [--n 50] [--backends onnxruntime torch]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from space import V3_LARGE, load_space
from space.cli import quiet_warnings

quiet_warnings()
from measure import LatencyTable, measure_latency  # noqa: E402
from measure.lut import build, validate, within, write_report  # noqa: E402

# The torch backend is ~3x slower per network: fewer pooled rounds keep the benchmark under ~15 min.
PROTOCOL = {"onnxruntime": dict(warmup=10, repeats=50, max_rounds=3), "torch": dict(warmup=5, repeats=30, max_rounds=2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--results-dir", default="results")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--repeat-ref", type=int, default=5)
    p.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    p.add_argument("--out", default="latency_lut.md", help="file name beside this script")
    args = p.parse_args()
    space = load_space("v3_large")
    lines = ["# Latency lookup table vs end-to-end measurement (v3_large space, 224x224, batch 1, 1 thread)", "",
             f"Machine: 2-core VM, load average {os.getloadavg()[0]:.2f} at the start. Entries and networks are "
             "timed with the table's statistic (p10, the fastest decile of the timed runs).",
             "`python benchmarks/latency_lut.py --results-dir <empty dir>` regenerates this file.", "",
             "| backend | entries | build s | calibration (scale, offset ms) | within ±5% | within ±10% | median abs error | "
             "reference p10 over runs (ms) | run-to-run (max-min)/value, p10 | same, median | median IQR/median |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for backend in args.backends:
        table = LatencyTable.open(args.results_dir, backend=backend, threads=1, input_size=224, **PROTOCOL[backend])
        t0 = time.time()
        build(space, table, calibrate=8, seed=0)
        build_s = time.time() - t0
        rows = validate(space, table, n=args.n, seed=0)
        csv_path, png_path = write_report(rows, table, space.name)
        refs = [measure_latency(V3_LARGE, backend=backend, **PROTOCOL[backend]) for _ in range(args.repeat_ref)]
        lows, meds = [r.p10_ms for r in refs], [r.median_ms for r in refs]
        cal = table.calibration

        def spread(values):
            return (max(values) - min(values)) / statistics.median(values)

        lines.append(
            f"| {backend} | {len(table.entries)} | {build_s:.0f} | {cal['scale']:.3f}, {cal['offset']:.2f} | "
            f"{within(rows, 0.05):.0%} | {within(rows, 0.10):.0%} | "
            f"{statistics.median(abs(r['error']) for r in rows):.1%} | {', '.join(f'{m:.2f}' for m in lows)} | "
            f"{spread(lows):.1%} | {spread(meds):.1%} | {statistics.median(r.spread_ms / r.median_ms for r in refs):.1%} |")
        print(lines[-1], flush=True)
        print(f"  {csv_path}\n  {png_path}", flush=True)
    out = Path(__file__).with_name(args.out)
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.2f}."]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
