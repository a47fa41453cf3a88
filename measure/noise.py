"""Can this host time a latency table to ±5% right now? (``python -m measure.lut noise``)

Times MobileNetV3-Large and -Small end to end, interleaved (one run of each, in turn), for some seconds,
then cuts the sequence into windows of ``WINDOW`` pairs, the size of one probe timing. Per window: the
fastest decile (p10, the table's statistic) of each network and the ratio of the two. The ratio is what a
table predicts (a network's latency in units of the probe's): if the machine only changed speed as a
whole, the ratio would stay put while each p10 moved, and converting timings by the probe
(``measure.probe``) would remove the drift. How far the ratio moves between windows is the error no
probe can remove: the floor of a validation on this host, whatever the table.

The ratio can hold while the machine is still too busy to build a table: its speed jumps between levels
within seconds (issue 27: one block's p10 per second moved -8% to +7%, in steps of about 3%), both networks
jump together, and a table's entries, timed one after another, each land on some level. So the check also
does what a build does, on a fixed sample of blocks (``sweep``): two shuffled passes, each block timed paired with
the reference block (``measure.probe.BLOCK``, table format 5), and the share of blocks whose two ratios differ by
more than ``measure.table.CONFIRM``, the entries a build would time again. Timed alone (format 4), quiet builds here
timed 1-4% of their entries again and busy ones 21-62%, on days when the ratio passed; paired, a busy host's
onnxruntime blocks 6% (benchmarks/latency_lut/block_pairing.md).
"""
from __future__ import annotations

import os
import platform
import random
import statistics
import time

from space import V3_LARGE, V3_SMALL, scale_width

from . import calibration as calib
from .entries import Entry, arch_entries
from .latency import make_runner, time_paired
from .probe import SpeedProbe
from .table import CONFIRM

WINDOW = 20  # pairs per window: about one probe timing's worth
QUIET_SHARE = 0.80  # windows whose ratio lies within ±5% of the median: below this share, a ±5% check measures the host
SWEEP_BLOCKS = 48  # blocks timed in the sweep: 10% is then 4.8 of them; 2 passes take 15-30 s here


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


def sweep_entries(input_size: int = 224, n: int = SWEEP_BLOCKS) -> list[Entry]:
    """A fixed sample of ``n`` blocks a table holds: the distinct blocks of MobileNetV3-Large and -Small at x0.5,
    x0.75 and x1, every ``k``-th of them in key order (the same on every host)."""
    blocks = {e.key: e for m in (0.5, 0.75, 1.0) for a in (V3_LARGE, V3_SMALL)
              for e in arch_entries(scale_width(a, m) if m != 1.0 else a, input_size) if e.key.startswith("block_")}
    keys = sorted(blocks)
    step = max(1, len(keys) // n)
    return [blocks[k] for k in keys[::step][:n]]


def retimed(timings: dict[str, list[float]], confirm: float = CONFIRM) -> int:
    """How many entries a build would time again: those whose two fastest timings differ by more than ``confirm``
    (``measure.table``'s test of a fastest pass)."""
    return sum(sorted(t)[1] > sorted(t)[0] * (1 + confirm) for t in timings.values())


def sweep(backend: str = "onnxruntime", n: int = SWEEP_BLOCKS, passes: int = 2, time_entry=None) -> dict:
    """Time ``sweep_entries`` in ``passes`` shuffled passes as a build does (each entry exported afresh and timed
    paired with the reference block: its ratio to it) and count the entries a build would time again (module note).
    ``time_entry(entry) -> figure`` replaces the timing (tests)."""
    entries = sweep_entries(n=n)
    if time_entry is None:
        reference = SpeedProbe(backend=backend, threads=1, input_size=224, batch=1, channels_last=False).block_runner()

        def time_entry(e: Entry) -> float:
            run = make_runner(e.build(), backend=backend, shape=e.input_shape(1), threads=1)
            lat, ref_ms, _ = time_paired(run, reference, backend=backend, warmup=10)
            return lat.p10_ms / ref_ms

    timings: dict[str, list[float]] = {e.key: [] for e in entries}
    start = time.monotonic()
    for p in range(passes):
        order = list(entries)
        random.Random(f"sweep-{p}").shuffle(order)
        for e in order:
            timings[e.key].append(time_entry(e))
    again = retimed(timings)
    return {"sweep_blocks": len(entries), "sweep_retimed": again, "sweep_share": again / len(entries),
            "sweep_busy": again > calib.RETIMED * len(entries), "sweep_seconds": round(time.monotonic() - start, 1)}


def quiet(r: dict) -> bool:
    """Whether a ±5% validation on this host would measure the table rather than the host: the two networks' ratio
    holds in ``QUIET_SHARE`` of windows, and (when the sweep ran) a build would time at most ``calibration.RETIMED``
    of its entries again."""
    return r["windows"] > 0 and r["ratio_within_5"] >= QUIET_SHARE and not r.get("sweep_busy", False)


def verdict(r: dict) -> str:
    """One line a user reads: the figures and what they mean for building and checking a table now."""
    if not r["windows"]:
        return (f"host noise: only {r['pairs']} pairs timed in {r['seconds']:.0f} s, fewer than one window of "
                f"{r['window']}: run longer (seconds=...)")
    head = (f"host noise ({r['backend']}, {r['seconds']:.0f} s, {r['windows']} windows of {r['window']} pairs, load "
            f"{r['load_before']:.2f}): the machine's speed moved {r['large_spread']:.1%}; the V3-Small/V3-Large ratio "
            f"is within ±5% in {r['ratio_within_5']:.0%} of windows (spread {r['ratio_spread']:.1%})")
    if r.get("sweep_share") is not None:
        head += (f"; {r['sweep_retimed']} of {r['sweep_blocks']} blocks ({r['sweep_share']:.0%}) timed twice differ by "
                 f"more than {CONFIRM:.0%}, the entries a build would time again (quiet: a few %)")
    if quiet(r):
        return head + ": quiet enough to build and validate a table to ±5%"
    why = []
    if r["ratio_within_5"] < QUIET_SHARE:
        why.append(f"the ratio holds in under {QUIET_SHARE:.0%} of windows")
    if r.get("sweep_busy"):
        why.append(f"over {calib.RETIMED:.0%} of blocks would be timed again, and the build called busy")
    return (head + f": too noisy ({' and '.join(why)}): a ±5% validation here measures the host, not the table; "
            "stop other jobs or pin the timing to an idle core (taskset -c <core>) and check again")
