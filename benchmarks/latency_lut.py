"""How well the per-block latency table predicts end-to-end latency, per backend.

For each backend: build the table for every entry of the v3_large space and the fixed calibration
set (``measure.calibration``; ``python -m measure.lut build``), then predict and measure 50 other
random points (seed 0) end to end twice (``validate``), and report the share within +-5% / +-10%.
Measured latencies are at the table's reference speed (``measure.probe``); the shares against the
latencies as timed, before that conversion, are reported beside them. Run-to-run spread: the
reference network timed five times, as timed and converted. Writes benchmarks/latency_lut.md.

    python benchmarks/latency_lut.py [--results-dir <empty dir>] [--n 50] [--backends onnxruntime torch]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from core.cli import quiet_warnings
from space import V3_LARGE, load_space

quiet_warnings()
from measure import LatencyTable, measure_latency  # noqa: E402
from measure.lut import build, validate, within  # noqa: E402


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def share(errors: list[float], tolerance: float) -> str:
    return f"{sum(abs(e) <= tolerance for e in errors) / len(errors):.0%}"


def bench(backend: str, results_dir: str, n: int, repeat_ref: int) -> str:
    space = load_space("v3_large")
    table = LatencyTable.open(results_dir, backend=backend)  # the defaults of conf/latency/lut.yaml
    t0 = time.time()
    build(space, table)
    build_s = time.time() - t0
    runs = []
    for _ in range(2):
        t0 = time.time()
        runs.append(validate(space, table, n=n, seed=0))
        validate_s = time.time() - t0
    converted = [table.measure_networks([V3_LARGE])[0]["ms"] for _ in range(repeat_ref)]
    as_timed = [measure_latency(V3_LARGE, backend=backend).p10_ms for _ in range(repeat_ref)]
    again = [b["measured_ms"] / a["measured_ms"] - 1 for a, b in zip(*runs)]
    cal = table.calibration
    cells = [backend, f"{build_s:.0f}", f"{validate_s:.0f}", f"{cal['scale']:.3f}, {cal['overhead_ms']:.2f}"]
    for rows in runs:
        errors = [r["error"] for r in rows]
        raw = [r["predicted_ms"] / r["measured_raw_ms"] - 1 for r in rows]
        cells += [f"{within(rows, 0.05):.0%} / {within(rows, 0.10):.0%}",
                  f"{statistics.mean(errors):+.1%} ± {statistics.pstdev(errors):.1%}",
                  f"{share(raw, 0.05)} / {share(raw, 0.10)}"]
    cells += [f"{statistics.pstdev(again):.1%}", f"{spread(converted):.1%}", f"{spread(as_timed):.1%}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--results-dir", default="results")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--repeat-ref", type=int, default=5)
    p.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    p.add_argument("--out", default="latency_lut.md", help="file name beside this script")
    args = p.parse_args()
    lines = ["# Latency lookup table vs end-to-end measurement (v3_large space, 224x224, batch 1, 1 thread)", "",
             f"Machine: 2-core VM, load average {os.getloadavg()[0]:.2f} at the start. Table defaults: p10 statistic, "
             "2 shuffled passes, the fixed calibration set (relative-error fit), timings converted to the "
             "reference speed of the probe.",
             "`python benchmarks/latency_lut.py --results-dir <empty dir>` regenerates this file.", "",
             "| backend | build s | validate s | calibration (scale, overhead ms) | run 1: ±5% / ±10% "
             "| run 1: error mean ± sd "
             "| run 1 as timed: ±5% / ±10% | run 2: ±5% / ±10% | run 2: error mean ± sd | run 2 as timed: ±5% / ±10% "
             "| run 2 / run 1 measured, sd | reference net, 5 runs (max-min)/median, converted | same, as timed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for backend in args.backends:
        lines.append(bench(backend, args.results_dir, args.n, args.repeat_ref))
        print(lines[-1], flush=True)
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.2f}."]
    out = Path(__file__).with_name(args.out)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
