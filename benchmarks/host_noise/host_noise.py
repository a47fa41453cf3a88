"""Can this host validate a latency table to ±5%? (issue 13: why `latency_lut.md` needs a quiet machine.)

Times MobileNetV3-Large and -Small end to end, interleaved (one run of each, in turn) for ``--seconds``,
then cuts the sequence into windows of ``--window`` pairs, the size of one probe timing. Per window: the
fastest decile (p10, the table's statistic) of each network and the ratio of the two p10s. The ratio is
what a table predicts (a network's latency in units of the probe's): if the machine only changed speed
as a whole, the ratio would stay put while each p10 moved, and bracketing timings with a probe
(``measure.probe``) would remove the drift. The spread of the ratio across windows is the error no
probe can remove, the floor of a validation.

    python -m benchmarks.host_noise.host_noise [--backend onnxruntime] [--seconds 60] [--window 20]

Appends one JSON line to ``benchmarks/host_noise/host_noise.jsonl`` and rewrites ``benchmarks/host_noise/host_noise.md`` from
all lines. Run it alone on the machine: anything else running is part of what it measures.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import append_jsonl, read_jsonl
from core import quiet_warnings
from space import V3_LARGE, V3_SMALL  # noqa: E402

quiet_warnings()
from measure import make_runner  # noqa: E402

HERE = Path(__file__).resolve().parent


def p10(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[0]


def spread(values: list[float]) -> float:
    """(max - min) / median, the measure `latency_lut.py`'s host check uses."""
    return (max(values) - min(values)) / statistics.median(values)


def windows(large_ms: list[float], small_ms: list[float], size: int) -> list[dict]:
    """Per window of ``size`` interleaved pairs: both p10s and their ratio (small / large)."""
    out = []
    for i in range(0, len(large_ms) - size + 1, size):
        lg, sm = p10(large_ms[i:i + size]), p10(small_ms[i:i + size])
        out.append({"large_p10_ms": lg, "small_p10_ms": sm, "ratio": sm / lg})
    return out


def summarize(rows: list[dict]) -> dict:
    if not rows:  # too few pairs for one window (a short run on a slow host): nothing measured
        nan = float("nan")
        return {"windows": 0, "large_p10_min_ms": nan, "large_p10_max_ms": nan, "large_spread": nan,
                "ratio_median": nan, "ratio_spread": nan, "ratio_within_5": nan}
    ratios = [r["ratio"] for r in rows]
    large = [r["large_p10_ms"] for r in rows]
    mid = statistics.median(ratios)
    return {
        "windows": len(rows),
        "large_p10_min_ms": min(large), "large_p10_max_ms": max(large), "large_spread": spread(large),
        "ratio_median": mid, "ratio_spread": spread(ratios),
        # share of windows whose ratio is within ±5% of the median: the best a ±5% validation could do
        "ratio_within_5": sum(abs(r / mid - 1) <= 0.05 for r in ratios) / len(ratios),
    }


def run(backend: str, seconds: float, size: int) -> dict:
    shape = (1, 3, 224, 224)
    large = make_runner(V3_LARGE, backend=backend, shape=shape, threads=1)
    small = make_runner(V3_SMALL, backend=backend, shape=shape, threads=1)
    for _ in range(10):
        large(), small()
    lg, sm = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        large()
        t1 = time.perf_counter()
        small()
        t2 = time.perf_counter()
        lg.append((t1 - t0) * 1e3)
        sm.append((t2 - t1) * 1e3)
    return {"backend": backend, "seconds": seconds, "window": size, "pairs": len(lg),
            "load_before": os.getloadavg()[0], "host": platform.node(),
            **summarize(windows(lg, sm, size))}


def report(records: list[dict]) -> str:
    lines = [
        "# Host noise: how far a probe can correct this machine's timings",
        "",
        "`python -m benchmarks.host_noise.host_noise` appends a row (module docstring). MobileNetV3-Large and -Small,",
        "224 px, batch 1, 1 thread, timed in turn; per window of `window` pairs the p10 of each and the",
        "ratio small/large. *Large p10* is how much the machine's speed moved; *ratio spread* ((max-min)/median",
        "over windows) and *ratio within ±5%* are what remains after a perfect probe correction.",
        "",
        "| date (UTC) | backend | s | pairs | window | load before | Large p10 min-max ms (spread) "
        "| ratio median | ratio spread | windows with ratio within ±5% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['date']} | {r['backend']} | {r['seconds']:.0f} | {r['pairs']} | {r['window']} "
            f"| {r['load_before']:.2f} | "
            f"{r['large_p10_min_ms']:.2f}-{r['large_p10_max_ms']:.2f} ({r['large_spread']:.0%}) | "
            f"{r['ratio_median']:.4f} | {r['ratio_spread']:.1%} | {r['ratio_within_5']:.0%} |")
    lines += [
        "",
        "A table is validated by comparing single end-to-end timings with predictions; when the ratio of two",
        "fixed networks timed side by side moves by more than 5% between windows, a ±5% target measures the",
        "host, not the table. `latency_lut.py` refuses to time when five probe timings spread by more than 5%.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    record = {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **run(args.backend, args.seconds, args.window)}
    jsonl = args.out / "host_noise.jsonl"
    append_jsonl(jsonl, record)
    (args.out / "host_noise.md").write_text(report(read_jsonl(jsonl)))
    print(f"ratio spread {record['ratio_spread']:.1%}, {record['ratio_within_5']:.0%} of windows within ±5%; "
          f"wrote {args.out / 'host_noise.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
