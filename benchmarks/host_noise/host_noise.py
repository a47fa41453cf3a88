"""Can this host validate a latency table to ±5%? (issue 13: why `latency_lut.md` needs a quiet machine.)

The measurement is the product's (``measure.host_noise``; a user runs it as ``python -m measure.lut noise``):
MobileNetV3-Large and -Small timed in turn for ``--seconds``, cut into windows of ``--window`` pairs, the ratio
of their p10s per window; then ``--sweep-blocks`` fixed blocks timed twice as a build times its entries. This script keeps every run of it on this project's machines, one line each.

    python -m benchmarks.host_noise.host_noise [--backend onnxruntime] [--seconds 60] [--window 20]

Appends one JSON line to ``benchmarks/host_noise/host_noise.jsonl`` and rewrites ``benchmarks/host_noise/host_noise.md`` from
all lines. Run it alone on the machine: anything else running is part of what it measures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import append_jsonl, read_jsonl
from core import quiet_warnings

quiet_warnings()
from measure import host_noise, host_sweep  # noqa: E402

HERE = Path(__file__).resolve().parent


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
        "| ratio median | ratio spread | windows with ratio within ±5% | blocks timed twice beyond 3% |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['date']} | {r['backend']} | {r['seconds']:.0f} | {r['pairs']} | {r['window']} "
            f"| {r['load_before']:.2f} | "
            f"{r['large_p10_min_ms']:.2f}-{r['large_p10_max_ms']:.2f} ({r['large_spread']:.0%}) | "
            f"{r['ratio_median']:.4f} | {r['ratio_spread']:.1%} | {r['ratio_within_5']:.0%} | "
            + (f"{r['sweep_retimed']} of {r['sweep_blocks']} ({r['sweep_share']:.0%}) |" if r.get("sweep_blocks") else "|"))
    lines += [
        "",
        "A table is validated by comparing single end-to-end timings with predictions; when the ratio of two",
        "fixed networks timed side by side moves by more than 5% between windows, a ±5% target measures the",
        "host, not the table. `latency_lut.py` refuses to time when five probe timings spread by more than 5%.",
        "The ratio can hold while the machine jumps between speeds within seconds, which a table's entries, timed",
        "one after another, do feel: *blocks timed twice beyond 3%* (from session 25) times a fixed sample of blocks",
        "in two shuffled passes as a build does (`measure.noise.sweep`) and counts those whose two timings differ",
        "by more than 3%, the entries a build would time again; over 10%, a build is called busy and refused.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--sweep-blocks", type=int, default=48, help="blocks timed twice as a build does (0: skip)")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    record = {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **host_noise(args.backend, args.seconds, args.window)}
    if args.sweep_blocks:
        record.update(host_sweep(args.backend, args.sweep_blocks))
    jsonl = args.out / "host_noise.jsonl"
    append_jsonl(jsonl, record)
    (args.out / "host_noise.md").write_text(report(read_jsonl(jsonl)))
    print(f"ratio spread {record['ratio_spread']:.1%}, {record['ratio_within_5']:.0%} of windows within ±5%; "
          f"wrote {args.out / 'host_noise.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
