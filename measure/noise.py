"""Can this host time a latency table to ±5% right now? (``python -m measure.lut noise``)

Times MobileNetV3-Large and -Small end to end, interleaved (one run of each, in turn), for some seconds,
then cuts the sequence into windows of ``WINDOW`` pairs, the size of one probe timing. Per window: the
fastest decile (p10, the table's statistic) of each network and the ratio of the two. The ratio is what a
table predicts (a network's latency in units of the probe's): if the machine only changed speed as a
whole, the ratio would stay put while each p10 moved, and converting timings by the probe
(``measure.probe``) would remove the drift. How far the ratio moves between windows is the error no
probe can remove: the floor of a validation on this host, whatever the table.
"""
from __future__ import annotations

import os
import platform
import statistics
import time

from space import V3_LARGE, V3_SMALL

from .latency import make_runner

WINDOW = 20  # pairs per window: about one probe timing's worth
QUIET_SHARE = 0.80  # windows whose ratio lies within ±5% of the median: below this share, a ±5% check measures the host


def p10(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[0]


def spread(values: list[float]) -> float:
    """(max - min) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def windows(large_ms: list[float], small_ms: list[float], size: int = WINDOW) -> list[dict]:
    """Per window of ``size`` interleaved pairs: both p10s and their ratio (small / large)."""
    out = []
    for i in range(0, len(large_ms) - size + 1, size):
        lg, sm = p10(large_ms[i:i + size]), p10(small_ms[i:i + size])
        out.append({"large_p10_ms": lg, "small_p10_ms": sm, "ratio": sm / lg})
    return out


def summarize(rows: list[dict]) -> dict:
    """The windows' figures: how far the machine's speed moved (``large_spread``), how far the ratio moved
    (``ratio_spread``) and the share of windows within ±5% of the median ratio (``ratio_within_5``)."""
    if not rows:  # too few pairs for one window (a short run on a slow host): nothing measured
        nan = float("nan")
        return {"windows": 0, "large_p10_min_ms": nan, "large_p10_max_ms": nan, "large_spread": nan,
                "ratio_median": nan, "ratio_spread": nan, "ratio_within_5": nan}
    ratios = [r["ratio"] for r in rows]
    large = [r["large_p10_ms"] for r in rows]
    mid = statistics.median(ratios)
    return {"windows": len(rows), "large_p10_min_ms": min(large), "large_p10_max_ms": max(large),
            "large_spread": spread(large), "ratio_median": mid, "ratio_spread": spread(ratios),
            "ratio_within_5": sum(abs(r / mid - 1) <= 0.05 for r in ratios) / len(ratios)}


def host_noise(backend: str = "onnxruntime", seconds: float = 60.0, size: int = WINDOW) -> dict:
    """Time the two networks in turn for ``seconds`` on one thread and summarize their windows (module note)."""
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
            "load_before": os.getloadavg()[0], "host": platform.node(), **summarize(windows(lg, sm, size))}


def quiet(r: dict) -> bool:
    """Whether a ±5% validation on this host would measure the table rather than the host."""
    return r["windows"] > 0 and r["ratio_within_5"] >= QUIET_SHARE


def verdict(r: dict) -> str:
    """One line a user reads: the figures and what they mean for building and checking a table now."""
    if not r["windows"]:
        return (f"host noise: only {r['pairs']} pairs timed in {r['seconds']:.0f} s, fewer than one window of "
                f"{r['window']}: run longer (seconds=...)")
    head = (f"host noise ({r['backend']}, {r['seconds']:.0f} s, {r['windows']} windows of {r['window']} pairs, load "
            f"{r['load_before']:.2f}): the machine's speed moved {r['large_spread']:.1%}; the V3-Small/V3-Large ratio "
            f"is within ±5% in {r['ratio_within_5']:.0%} of windows (spread {r['ratio_spread']:.1%})")
    if quiet(r):
        return head + ": quiet enough to build and validate a table to ±5%"
    return (head + f": too noisy (under {QUIET_SHARE:.0%}): a ±5% validation here measures the host, not the table; "
            "stop other jobs or pin the timing to an idle core (taskset -c <core>) and check again")
