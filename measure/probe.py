"""How fast the machine runs right now, read off a fixed probe network (MobileNetV3-Large at the table's
input size and backend).

A whole network is timed in alternation with the probe and stored as the ratio of the two times the
table's *unit* (``measure.table``): on this shared VM a network's own timing moved 2-3% between tables
built half an hour apart where its ratio to the probe moved 1%, since both feel the same memory traffic
of other tenants. The unit starts as the median of ``REFERENCE_TIMINGS`` probe timings taken when the
table is started, with their spread kept beside it, and is settled by the first calibration on every
probe timing of the build (the probe is timed between entries whenever it is due). Block entries are not
converted by it: a block that fits in cache does not feel that traffic, and the probe's drift put 2.6% of
offset into them (format 2 converted them; issue 27). They are timed paired with a fixed block instead
(``BLOCK``, format 5): the machine's speed jumps as a whole within seconds (one block's p10 per second
-8% to +7%, two blocks timed in turn correlated 0.95), which moves a block timed alone 3% between
builds and a block's ratio to the reference block 0.6% (benchmarks/latency_lut/block_pairing.md).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from space import V3_LARGE, V3_SMALL, BlockSpec

from .entries import Entry, block_entry
from .latency import make_runner, time_runner

PROBE = "v3_large"
# A whole network is also timed paired with MobileNetV3-Small, and converted by the two probes weighted by its size
# (measure.table.size_weight): how fast a small network runs beside V3-Large swings with the host (eager torch: the
# two probes' ratio 0.38-0.59 within minutes); converted this way onnxruntime's small networks moved between runs half
# as much or less, torch's no difference shown (benchmarks/latency_lut/size_probe.md).
SMALL_PROBE = "v3_small"
INTERVAL_S = 1.0  # re-time the probe after this much measuring; the drift seen here takes tens of seconds
REFERENCE_TIMINGS = 5
# A unit set in a slow spell shifts every timing of the table by that spell (here once 24%: five probe timings
# of 6.4-7.6 ms where the next minute read 6.1): the five timings are taken again, up to REFERENCE_TRIES times,
# until they spread by at most QUIET_SPREAD, and the quietest set is kept.
REFERENCE_TRIES = 3
QUIET_SPREAD = 0.05
# Calls per probe timing. 50 (with a speed window of 5) gave a lower run-to-run change than 20 (window 3) in 7 of 8
# runs of benchmarks/latency_lut/probe_protocol.md (p 0.035, looked at after 3, 4 and 8 runs, so weaker than it reads);
# timing networks paired with the probe did better in 5 of 5 by more, and is the change to make next.
REPEATS = 20
# The block every other entry (stem, block, head, empty graph) is timed against: a block of MobileNetV3-Large,
# cache-resident, about 0.1 ms on this VM; the same at every input size (a table's blocks are compared with it).
def block_reference() -> Entry:
    """The reference block (``BLOCK``) as an entry of the table."""
    return block_entry(80, 14, BlockSpec(3, 200, 80, False, "HS", 1))


BLOCK = block_reference().key  # block_r14_i80_k3_e200_o80_s1_se0_HS


def reference(timings: Sequence[float]) -> dict:
    """A table's unit from several probe timings: their median, and their spread ((max - min) / median)."""
    ms = statistics.median(timings)
    return {"ms": ms, "timings": [round(t, 5) for t in timings], "spread": round((max(timings) - min(timings)) / ms, 5)}


class SpeedProbe:
    """Times the probe (warm, few repeats: its p10 is what counts) and says when it is due again.

    ``clock`` (seconds) and ``timer`` (the probe's latency in ms, called instead of timing the probe
    network) let tests drive the arithmetic with known numbers.
    """

    def __init__(self, *, backend: str, threads: int, input_size: int, batch: int, channels_last: bool,
                 interval_s: float = INTERVAL_S, repeats: int = REPEATS, clock: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] | None = None):
        self.options = dict(backend=backend, threads=threads)
        self.shape = (batch, 3, input_size, input_size)
        self.channels_last, self.interval_s, self.repeats = channels_last, interval_s, repeats
        self._clock, self._timer = clock, timer
        self._run = self._small = self._block = None
        self._last = -float("inf")

    def time(self) -> float:
        """The probe's latency now (p10, ms)."""
        ms = self._timer() if self._timer is not None else self._time_probe()
        self._last = self._clock()
        return ms

    def reference(self, n: int = REFERENCE_TIMINGS) -> dict:
        """Time the probe ``n`` times in a row: the unit of a new table (see ``reference``)."""
        return reference([self.time() for _ in range(n)])

    def runner(self):
        """The probe network's runner (``measure.latency.make_runner``), exported once: re-exporting it each time
        would cost more than timing it."""
        if self._run is None:
            self._run = make_runner(V3_LARGE, shape=self.shape, channels_last=self.channels_last, **self.options)
        return self._run

    def ratio(self, n: int = REFERENCE_TIMINGS) -> float | None:
        """The small probe's p10 over the probe's, the median of ``n`` timed in turn (``measure.runner.probe_ratio``);
        None with a scripted ``timer`` (the table then takes it from its first networks)."""
        if self._timer is not None:
            return None
        from .runner import probe_ratio

        self.small_runner()
        return probe_ratio(lambda: self._p10(warmup=3, run=self._small), lambda: self._p10(warmup=3), n)

    def small_runner(self):
        """The small probe's runner (``SMALL_PROBE``), built once; only networks are timed against it."""
        if self._small is None:
            self._small = make_runner(V3_SMALL, shape=self.shape, channels_last=self.channels_last, **self.options)
        return self._small

    def block_runner(self):
        """The reference block's runner (``BLOCK``, at the table's batch and layout), built and warmed once:
        every entry but a whole network is timed against it (``measure.runner.paired_timing``)."""
        if self._block is None:
            entry = block_reference()
            self._block = make_runner(entry.build(), shape=entry.input_shape(self.shape[0]),
                                      channels_last=self.channels_last, name=f"the reference block {BLOCK}",
                                      **self.options)
            time_runner(self._block, warmup=30, repeats=3, max_rounds=1, **self.options)
        return self._block

    def _time_probe(self) -> float:
        first = self._run is None
        if first:
            self.runner()
            # A fresh process's first timings run slow (allocator, caches): one of five fresh processes read
            # the probe 18% slower than the same network timed right after it. The first reading is the
            # median of three, after a longer warm-up.
            return statistics.median([self._p10(warmup=30), self._p10(warmup=3), self._p10(warmup=3)])
        return self._p10(warmup=3)

    def _p10(self, warmup: int, run=None) -> float:
        return time_runner(run or self._run, warmup=warmup, repeats=self.repeats, max_rounds=1, **self.options).p10_ms

    def due(self) -> bool:
        return self._clock() - self._last >= self.interval_s
