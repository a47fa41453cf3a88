"""The per-block latency lookup table (LUT), cached on disk per machine, backend, threads and input size.

A network costs stem + blocks + head, each an *entry* keyed by everything that sets its cost:

    stem_r224_c16                          input resolution, stem width
    block_r112_i16_k3_e64_o24_s2_se0_RE    input resolution and channels, kernel, expand, out, stride, SE, act
    head_r7_i160_l960_h1280_n1000          last conv, pool and classifier: in, last_conv, head, classes

An entry is that part built alone (with the same ``space.model`` classes as the network) and timed on an input
of its own shape, paired with a fixed reference block (below). A prediction is the sum of a
network's entries corrected by the effects a part timed alone does not show (``measure.calibration``'s
model: per-call cost, timed on empty graphs as ``call_r<side>_i<channels>`` entries, depthwise-first
blocks, weights read from memory, eager feature maps), fitted on a fixed set of networks timed end to
end (relative error, all terms >= 0, checked leave-one-out) and stored in the table. A table without a
fit of the current model for the current calibration set predicts nothing: it calibrates first, or, when
it may not measure and lacks a timing the fit needs, is refused.

Every entry is timed in ``passes`` shuffled sweeps over the entries being filled, and keeps the
fastest: a colleague's job that slows one sweep down for a second or two rarely lands on the same
entry in the next one, and noise only ever adds time. The fastest counts once it is *confirmed*: while
no other pass of the entry lies within ``confirm`` (3%) of it, the entry is timed again in a further
sweep, up to ``max_passes`` (4). Two passes disagree by more than 3% on 16% of eager-torch entries
(a few percent of onnxruntime's), and a fastest timing no second one comes near is as likely a lucky
spell as the entry's speed (issue 27: on one torch table, refitting with the passes of a second table
taken this way cut the held-out rms error from 5.4% to 4.0%). Networks timed end to end (calibration,
``validate``, ``latency=measured``) are confirmed the same way, so both sides of a comparison are the
same statistic. Only the sweep that times an entry confirms it: an entry a table holds settled is
never timed again (a record marks whether it is ``settled``, so a build killed before an entry was confirmed
confirms it when resumed).

Since format 5 every entry but a whole network is timed in alternation with a fixed reference block
(``measure.probe.BLOCK``: 10 calls of one, 10 of the other, 8 times, ``measure.runner.paired_timing``) and
stored as the median ratio of their p10s times the table's *block unit*, the reference block's p10 (the one
beside the first entry timed, made the median beside every entry of the build by the first calibration, as
the probe's unit is). This VM's speed moves as a whole within seconds, -8% to +7% around its median: an entry
timed alone carries the speed of the seconds it was timed in (it moved 3% between builds, and a busy host's
build timed half its entries again to confirm their fastest pass and was refused), its ratio to a block timed
beside it 0.6% (6% of entries timed again; benchmarks/latency_lut/block_pairing.md). Whole networks
(calibration and validation networks, ``net_...`` entries) are timed in alternation with a probe network
(``measure.probe``: 10 calls of each, 8 times) and stored as the median ratio of the two times the
table's *unit*, the probe's median latency over the build. Each is what this VM keeps steady
(issue 27, ten tables built over seven hours): a block's fastest timing moved a median 0.1% between
tables (the entries converted by the probe around them, as format 2 did, 2.6%: the probe's speed
drifts with the memory traffic of other tenants, which a block that fits in cache does not feel),
and a network's ratio to the probe moved a median 1% where its own timing moved 2-3%. A network is
timed against the small probe (MobileNetV3-Small) the same way, and its figure is the two conversions'
geometric mean weighted by where its own latency lies between the probes' (``size_weight``, log scale:
V3-Small's latency and below converts by the small probe alone, V3-Large's and above by the large one),
the small probe's ratio taken into the unit by the two probes' ratio over the build (``small_large``,
settled with the unit). How fast a small network runs beside V3-Large swings with the host (eager torch:
the probes' ratio 0.38-0.59 within minutes); converted this way, onnxruntime's small networks moved
between runs half as much or less, torch's no difference shown (benchmarks/latency_lut/size_probe.md).
Timings of an older table taken another way (entries timed alone, before format 5; networks timed alone,
or before format 4 against the large probe only) are dropped when it is read and timed again.

On disk: ``<results_dir>/lut/<machine>/<backend>_t<threads>_<input_size>.json`` (``b<batch>`` and
``cl`` appended when not batch 1 / NCHW). ``<machine>`` is ``$BNECK_MACHINE`` if set, else
``<hostname>-<8 hex of sha1(CPU model, logical CPU count)>``: stable across runs on one machine,
different when a worker lands on other hardware; with ``latency.target=ssh://...`` it is the target's,
as its runner reports it (``measure.remote``), and the target does the timing. Writes are atomic
(temporary file + ``os.replace``), so readers never take a lock; measuring holds an exclusive
``flock`` on ``<table>.lock`` and re-reads the file first, so two processes never measure the same
entry (nor time each other's load) and never lose each other's entries. Every entry is saved as soon
as it is measured, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import random
import statistics
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from core.files import write_atomic
from space import ArchSpec

from . import calibration as calib
from . import runner
from . import unit as units
from .entries import Entry, arch_entries, call_entries, call_entry, is_network, network_entry
from .latency import Latency, MeasureError, check_backend, check_statistic, make_runner, time_paired
from .probe import BLOCK, PROBE, QUIET_SPREAD, REFERENCE_TIMINGS, REFERENCE_TRIES, SpeedProbe, reference
from .probe import REPEATS as PROBE_REPEATS

FORMAT = 5  # 5: every entry timed paired, blocks with the reference block; before: blocks timed alone (timed again when
# read); 3: networks converted by the large probe alone (timed again); 2: blocks converted by the probe
CONFIRM = 0.03  # an entry's fastest timing stands once another pass lies within 3% of it (module note)
MAX_PASSES = 4  # passes at most while it does not
# how whole networks are timed (measure.runner.paired_timing) and converted (size_weight)
PAIRED = "paired with each probe, 10 + 10 calls x 8, weighted by size"
BLOCKS = f"paired with {BLOCK}, 10 + 10 calls x 8"  # how every other entry is timed and converted


def machine_id() -> str:
    """A stable name for this machine: ``$BNECK_MACHINE``, or hostname + hash of the CPU model (computed as
    a target's runner computes its own, ``measure.runner``)."""
    return runner.machine_id()


def table_name(backend: str, threads: int, input_size: int, batch: int = 1, channels_last: bool = False) -> str:
    """``onnxruntime_t1_224``: what a table times, as its file is named."""
    return (f"{backend}_t{threads}_{input_size}" + (f"_b{batch}" if batch != 1 else "")
            + ("_cl" if channels_last else ""))


def table_path(results_dir, backend: str, threads: int, input_size: int, batch: int = 1,
               channels_last: bool = False, machine: str | None = None) -> Path:
    name = table_name(backend, threads, input_size, batch, channels_last)
    return Path(results_dir) / "lut" / (machine or machine_id()) / f"{name}.json"


# -- the table -----------------------------------------------------------------------------------
class LatencyTable:
    """Entry latencies (ms) of one machine/backend/threads/input size, lazily measured and cached.

    ``measurements`` counts the entries this object timed itself (tests check reuse with it).
    """

    def __init__(self, path, *, backend: str = "onnxruntime", threads: int = 1, input_size: int = 224,
                 batch: int = 1, channels_last: bool = False, measure_missing: bool = True,
                 warmup: int = 10, repeats: int = 50, max_rel_spread: float = 0.05, max_rounds: int = 4,
                 statistic: str = "p10", passes: int = 2, confirm: float = CONFIRM, max_passes: int = MAX_PASSES,
                 calibration_archs: list[ArchSpec] | None = None, target=None, probe_repeats: int = PROBE_REPEATS,
                 unit: str = "machine"):
        self.path = Path(path)
        self.target = target  # None: time here; a ``measure.remote.RemoteTarget``: time there
        self.backend = check_backend(backend)
        self.statistic = check_statistic(statistic)  # which figure of an entry predictions sum
        self.threads, self.input_size, self.batch, self.channels_last = threads, input_size, batch, channels_last
        self.measure_missing = measure_missing
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise MeasureError(f"passes must be an integer >= 1, got {passes!r}")
        self.passes = passes
        if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
            raise MeasureError(f"max_passes must be an integer >= 1, got {max_passes!r}")
        if isinstance(confirm, bool) or not isinstance(confirm, (int, float)) or confirm < 0:
            raise MeasureError(f"confirm must be a fraction >= 0 (0: off), got {confirm!r}")
        self.confirm, self.max_passes = float(confirm), max(max_passes, passes)  # passes=6 alone means 6
        self.probe_repeats = probe_repeats  # calls per probe timing (measure.probe)
        self.unit = units.check_mode(unit)  # machine: the unit of this machine's first table (measure.unit)
        self.protocol = {"warmup": warmup, "repeats": repeats, "max_rel_spread": max_rel_spread,
                         "max_rounds": max_rounds}
        self.entries: dict[str, dict] = {}
        self.calibration: dict | None = None
        self.reference: dict | None = None  # the probe's latency that defines the table's unit (measure.probe)
        self.machine: str | None = None  # where the table was started (kept when the file is copied elsewhere)
        self._probe: SpeedProbe | None = None
        self._speeds: list[float] = []  # every probe timing this process took or received (``_settle_unit``)
        self._calibration_archs = calibration_archs  # None: ``measure.calibration.calibration_set()``
        self._set_id: str | None = None
        self.measurements = 0
        self._load()

    @classmethod
    def open(cls, results_dir="results", *, backend: str = "onnxruntime", threads: int = 1,
             input_size: int = 224, batch: int = 1, channels_last: bool = False, **kw) -> LatencyTable:
        """The table of this machine under ``results_dir`` (created on first measurement)."""
        machine = kw["target"].machine if kw.get("target") is not None else None  # keyed by where it times
        path = table_path(results_dir, check_backend(backend), threads, input_size, batch, channels_last, machine)
        return cls(path, backend=backend, threads=threads, input_size=input_size, batch=batch,
                   channels_last=channels_last, **kw)

    @property
    def reference_ms(self) -> float | None:
        return None if self.reference is None else self.reference["ms"]

    @property
    def sweeps(self) -> dict:
        """How many passes an entry gets: ``passes``, more while not confirmed, ``max_passes`` at most."""
        return {"passes": self.passes, "confirm": self.confirm, "max_passes": self.max_passes}

    @property
    def name(self) -> str:
        return f"lut:{self.backend}:t{self.threads}:{self.input_size}"

    # -- disk ------------------------------------------------------------------------------------
    def _header(self) -> dict:
        here = self.target.machine if self.target is not None else machine_id()
        out = {"format": FORMAT, "machine": self.machine or here, "backend": self.backend,
               "threads": self.threads, "input_size": self.input_size, "batch": self.batch,
               "channels_last": self.channels_last}
        if self.target is not None:  # what the target's runner reported: CPU, OS, runtime version
            out["target"] = self.target.describe()
        return out

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise MeasureError(f"latency table {self.path} is unreadable ({e}); delete it or pass another "
                               f"latency.table") from None
        if data.get("format") not in (2, 3, 4, FORMAT):
            raise MeasureError(f"latency table {self.path} has format {data.get('format')}, this bneck reads "
                               f"{FORMAT}: delete it and rebuild with `python -m measure.lut build +space=<name>`")
        for k in ("backend", "threads", "input_size", "batch", "channels_last"):
            if k in data and data[k] != getattr(self, k):
                raise MeasureError(f"latency table {self.path} holds {k}={data[k]}, not {getattr(self, k)}: "
                                   f"set latency.{k}={data[k]} or use another table")
        # Before format 5 entries were timed alone, before 4 networks were converted by the large probe alone: they
        # are timed again, and the fit that rests on them is made again (measuring them, or refused with the command
        # that does when it may not).
        old = data.get("format") < FORMAT
        self.entries.update(_current(data.get("entries", {}), sized=data.get("format") < 4))
        self.machine = data.get("machine") or self.machine
        self.calibration = (None if old else data.get("calibration")) or self.calibration
        if (data.get("reference") or {}).get("ms") is not None:
            self.reference = {k: v for k, v in data["reference"].items() if k != "probe"}

    def _save(self) -> None:
        data = {**self._header(), "protocol": {**self.protocol, **self.sweeps}, "calibration": self.calibration,
                "reference": {"probe": PROBE, **(self.reference or {"ms": None})},
                "entries": dict(sorted(self.entries.items()))}
        write_atomic(self.path, json.dumps(data, indent=1))

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._load()  # pick up what others measured while we waited
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- measuring -------------------------------------------------------------------------------------
    def passes_done(self, key: str) -> int:
        return _passes(self.entries.get(key))

    def _has(self, key: str) -> bool:
        return self._done(self.entries.get(key))

    def _done(self, record: dict | None) -> bool:
        """``passes`` timings or more, the fastest confirmed or ``max_passes`` reached. A record that says nothing
        (``settled`` missing: made before confirmation, or by a table with it off) is done at ``passes``."""
        n = _passes(record)
        return n >= self.passes and (record.get("settled", True) or n >= self.max_passes or self._confirmed(record))

    def missing(self, entries: Iterable[Entry]) -> list[Entry]:
        return [e for e in entries if not self._has(e.key)]

    def fill(self, entries: Iterable[Entry], progress=None) -> int:
        """Time the entries lacking passes and save each timing; returns how many entries this call timed.

        ``progress`` (e.g. a tqdm bar with ``total = passes * len(entries)``) gets ``update(1)`` per
        timing, done ones included.
        """
        entries = list({e.key: e for e in entries}.values())
        todo = self.missing(entries)
        if progress is not None:
            progress.update(sum(min(self.passes_done(e.key), self.passes) for e in entries))
        if not todo:
            return 0
        self._refuse(todo[0])
        with self._locked():
            timed = self._sweep(todo, self.entries, save=True, progress=progress)
        self.measurements += len(timed)
        return len(timed)

    def _sweep(self, entries: list[Entry], records: dict, save: bool, progress=None) -> set[str]:
        """Bring every entry to ``passes`` timings in ``records`` (more until confirmed), one sweep per pass.

        Each sweep visits the entries in a fresh shuffled order (as Google Benchmark's random
        interleaving does), so a slow spell of the machine spreads over unrelated entries instead of
        hitting neighbours. Entries are stored as timed (factor 1); networks come timed with the probe
        (``_measure_paired``) and are converted at the probe's speed during their own timing. The probe
        is also timed between entries, whenever it is due: those timings settle the unit
        (``_settle_unit``), and what was timed since the last one is saved with it. Up to format 2 entries
        were converted at the median of the last three probe timings (module note;
        benchmarks/latency_lut/probe_protocol.md). After ``passes`` sweeps, the entries of this call whose
        fastest timing is not confirmed (``_confirmed``) get further sweeps, up to ``max_passes``. Called under
        the lock.
        """
        timed = set()
        if self.reference is None and self.target is None:  # a target sends it with its first batch, retried there
            self._set_reference()
        for p in range(self.max_passes):
            order = [e for e in entries if _passes(records.get(e.key)) <= p and not self._done(records.get(e.key))]
            if not order:  # (a resumed build's entries may wait for a later pass: to be confirmed)
                continue
            if p >= self.passes and progress is not None and getattr(progress, "total", None) is not None:
                progress.total += len(order)  # a pass to confirm: the bar grows by it
            random.Random(f"{self.path.name}-{p}-{len(order)}").shuffle(order)
            pending = []
            timings = self._timings(order) if self.target is None else self.target.timings(self, order)
            try:
                for kind, *what in timings:  # probe, entries, probe, ... (measure.remote streams the same)
                    if kind == "block":  # an entry timed with the reference block: stored at the block unit
                        entry, lat, ref_ms = what
                        pending.append((entry, lat, self._block_unit(ref_ms) / ref_ms))
                    elif kind == "paired":  # a network timed with the probes: stored at once, at the unit
                        entry, lat, probe_ms, *small = what
                        sized = _sized(lat, probe_ms, small[0] if small else None)
                        self._store([(entry, lat, self.reference_ms / probe_ms, sized)], records, timed, save)
                    else:  # a probe timing (or, on a target, a new table's unit): saves what came before it
                        if kind == "reference":
                            self.reference = {**reference(what[0]), "provisional": True,
                                              **_ratio(what[1] if len(what) > 1 else None)}
                        self._speeds.append(self.reference_ms if kind == "reference" else what[0])
                        batch, pending = pending, []  # emptied first: a kill inside _store stores nothing twice
                        self._store(batch, records, timed, save)
                        continue
                    if progress is not None:
                        progress.update(1)
            finally:  # interrupted (a target lost mid-batch, a kill): keep what arrived
                self._store(pending, records, timed, save)
        return timed

    def _confirmed(self, record: dict | None) -> bool:
        """Whether ``record``'s fastest timing is confirmed: another of its passes lies within ``confirm`` of it
        (always when ``confirm`` is 0, or ``passes`` 1: a quick table asked for one timing each). Module note."""
        if not self.confirm or self.passes < 2:
            return True
        timings = sorted(t[self.statistic] for t in record["passes"])
        return len(timings) > 1 and timings[1] <= timings[0] * (1 + self.confirm)

    def _store(self, pending: list, records: dict, timed: set, save: bool) -> None:
        """Add each ``(entry, Latency, factor[, sized])`` of ``pending`` as a pass and save (module note: an entry's
        factor is the block unit over the reference block's speed while it was timed, a network's the unit over the
        probe's; ``sized``: its timing against
        the small probe, which converts it further once the table knows the probes' ratio, ``_size_correct``)."""
        for entry, lat, factor, *sized in pending:
            timing = _timing(lat, factor)
            if sized and sized[0] is not None:
                timing = _size_corrected({**timing, "small": sized[0]}, self.reference_ms, self.small_large)
            record = _with_pass(records.get(entry.key), timing)
            record["settled"] = self._confirmed(record) or _passes(record) >= self.max_passes
            records[entry.key] = record
            timed.add(entry.key)
        if pending and save:
            self._save()

    def _timings(self, order: list[Entry]):
        """Time ``order`` here: ``("probe", ms)``, then per entry ``("block", entry, Latency, reference block's ms)``
        or for a network ``("paired", entry, Latency, probe's ms, small)``, with the probe timed again whenever it
        is due and after the last entry."""
        yield "probe", self._probe_ms()
        for i, e in enumerate(order):
            if is_network(e.key):
                yield "paired", e, *self._measure_paired(e)
            else:
                yield "block", e, *self._measure_block(e)
            if self._probe.due() or i == len(order) - 1:
                yield "probe", self._probe_ms()

    def _probe_ms(self) -> float:
        return self._speed_probe().time()

    def _speed_probe(self) -> SpeedProbe:
        if self._probe is None:
            self._probe = SpeedProbe(backend=self.backend, threads=self.threads, input_size=self.input_size,
                                     batch=self.batch, channels_last=self.channels_last, repeats=self.probe_repeats)
        return self._probe

    def _set_reference(self) -> None:
        """A new table's unit (provisional until ``_settle_unit``): ``REFERENCE_TIMINGS`` probe timings, taken
        again up to ``REFERENCE_TRIES`` times until they spread by at most ``QUIET_SPREAD``, the quietest set kept
        (``measure.probe``); on a target the runner does the same. Called under the lock."""
        if self.target is not None:  # the runner retries on the target (measure.runner.reference_timings)
            timings, ratio = self.target.reference_timings(self)
            self.reference = self._carried({**reference(timings), "provisional": True, **_ratio(ratio)})
            return
        best = None
        for _ in range(REFERENCE_TRIES):
            ref = reference([self._probe_ms() for _ in range(REFERENCE_TIMINGS)])
            best = ref if best is None or ref["spread"] < best["spread"] else best
            if ref["spread"] <= QUIET_SPREAD:
                break
        # until the first calibration settles it (_settle_unit), as it does the probes' ratio taken now
        self.reference = self._carried({**best, "provisional": True, **_ratio(self._probe.ratio())})

    def _unit_kind(self) -> dict:
        """What a machine unit must have been set by to apply to this table (``measure.unit.read``)."""
        return {"probe": PROBE, "probe_repeats": self.probe_repeats}

    def _unit_path(self) -> Path:
        here = self.target.machine if self.target is not None else machine_id()
        return units.unit_path(here, table_name(self.backend, self.threads, self.input_size, self.batch,
                                                self.channels_last))

    def _carried(self, ref: dict) -> dict:
        """A new unit ``ref`` (the probe's speed now) replaced by the machine's unit when one is recorded: networks
        are then converted to it from their first timing. The speed now is kept as ``own_ms``."""
        if self.unit != "machine":
            return ref
        found = units.read(self._unit_path(), self._unit_kind())
        return ref if found is None else {**ref, "ms": found["ms"], "own_ms": ref["ms"]}

    def _provisional(self) -> bool:
        """Whether the unit or the block unit waits to be settled (``_settle_unit``)."""
        ref = self.reference or {}
        return bool(ref.get("provisional") or (ref.get("block") or {}).get("provisional"))

    def _settle_unit(self) -> None:
        """Make a provisional unit final: the median of every probe timing this process has (the unit's own
        and dozens more over the build), the networks' stored timings rescaled to it. Five timings in a row lie a median
        1.3% and up to 5.6% from the speed of the minutes after them (benchmarks/latency_lut/probe_protocol.md),
        and every prediction of the table carries that offset; the build's probe timings span it. The probes'
        ratio is settled with it (``_settle_small``), and the block unit (``_settle_block``). Called under the lock,
        by the first calibration."""
        ref = self.reference or {}
        if ref.get("provisional"):  # (else settled already, here or by another process)
            speeds = [*ref["timings"], *self._speeds]
            own = statistics.median(speeds)
            ms, where = own, {"from": "build"}
            if self.unit == "machine":  # the machine's unit, set now by this table if it is the first (measure.unit)
                path = self._unit_path()
                found, first = units.claim(path, self._unit_kind(), own, self.path)
                ms, where = found["ms"], {"from": "this build" if first else "machine", "path": str(path),
                                          "set": found.get("set"), "table": found.get("table")}
            _rescale(self.entries, is_network, ms / ref["ms"])  # a network's factor is unit / probe: scales alike
            self.reference = {**{a: b for a, b in ref.items() if a not in ("provisional", "own_ms")}, "ms": ms,
                              "settled_from": len(speeds), "own_ms": own, "unit": where}
            self._settle_small(self.entries, again=True)  # from the build's networks, not the few timings of the start
        self._settle_block()
        self._save()

    @property
    def own_ms(self) -> float | None:
        """The probe's median over this table's build, where its unit is the machine's (else its unit)."""
        ref = self.reference or {}
        return ref.get("own_ms", ref.get("ms"))

    @property
    def block_ms(self) -> float | None:
        """The block unit: the reference block's p10 (``measure.probe.BLOCK``) every other entry is stored in units
        of (its ratio to the reference block x this); None until the first such entry is timed."""
        return ((self.reference or {}).get("block") or {}).get("ms")

    def _block_unit(self, ref_ms: float) -> float:
        """The block unit, set (provisional) to ``ref_ms``, the reference block's p10 beside the first entry timed,
        when the table has none."""
        if self.block_ms is None:  # in the networks' unit (the machine's, when carried: ``_carried``)
            ms = ref_ms * self.reference_ms / self.own_ms
            self.reference = {**self.reference, "block": {"key": BLOCK, "ms": ms, "provisional": True}}
        return self.block_ms

    def _settle_block(self) -> None:
        """Make a provisional block unit final: the median of the reference block's p10 beside every stored entry
        timing (each pass keeps it as unit / factor), those timings rescaled to it. Called by ``_settle_unit``."""
        block = (self.reference or {}).get("block") or {}
        if not block.get("provisional"):
            return
        refs = [block["ms"] / t["factor"] for key, r in self.entries.items() if not is_network(key)
                for t in r["passes"]]
        # in the unit of the networks: a build that ran faster than the machine's unit converts its blocks alike
        ms = (statistics.median(refs) if refs else block["ms"]) * self.reference_ms / self.own_ms
        _rescale(self.entries, lambda key: not is_network(key), ms / block["ms"])
        self.reference = {**self.reference, "block": {"key": BLOCK, "ms": ms, "settled_from": len(refs)}}

    @property
    def small_large(self) -> float | None:
        """The two probes' ratio (small / large) over the build: what converts a network's ratio to the small probe
        into the table's unit (``_size_corrected``); None until the first calibration settles it."""
        return (self.reference or {}).get("small_large")

    def _settle_small(self, records: dict, again: bool = False) -> None:
        """Set the probes' ratio, if unset, from every network timing against both in ``self.entries`` and
        ``records`` (the median of their small / large p10s), and convert those timings by it. Called under the
        lock, by the first calibration; until then a new table holds the ratio of a few probe timings taken with
        its first unit (``_set_reference``), else (scripted probes) of its first networks' timings; ``again``
        replaces that one by the networks' (kept when there are none)."""
        if self.reference is None or (self.small_large is not None and not again):
            return
        sources = (self.entries,) if records is self.entries else (self.entries, records)
        ratios = [t["small"]["ms"] / t["small"]["large_ms"] for recs in sources for key, r in recs.items()
                  if is_network(key) for t in r["passes"] if t.get("small")]
        if not ratios:
            return
        self.reference = {**self.reference, "small_large": round(statistics.median(ratios), 5),
                          "small_from": len(ratios)}
        for recs in sources:
            for key, record in recs.items():
                if is_network(key) and any(t.get("small") for t in record["passes"]):
                    passes = [_size_corrected(t, self.reference_ms, self.small_large) for t in record["passes"]]
                    recs[key] = {**record, "passes": passes,
                                 **{f: min(t[f] for t in passes) for f in ("p10", "median")}}

    def ensure_reference(self) -> bool:
        """Set (and save) the table's unit now if it has none; True when it was set by this call."""
        if self.reference is not None:
            return False
        with self._locked():
            if self.reference is not None:  # another process set it while we waited
                return False
            self._set_reference()
            self._save()
        return True

    def content_hash(self, *, entries: bool = True) -> str:
        """A short hash of what this table's numbers rest on: its unit (reference), its calibration and
        (``entries``) the timings the calibration was fitted on. Other entries are left out: the table
        grows while runs measure, and a new entry changes no earlier prediction. ``measured`` models
        rest on the unit alone (``entries=False``)."""
        parts = {"reference": self.reference}
        if entries:
            parts["calibration"] = self.calibration
            parts["entries"] = {k: self.entries.get(k) for k in sorted(self.calibration_keys())}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def _refuse(self, entry: Entry) -> None:
        if not self.measure_missing:
            raise MeasureError(f"latency table {self.path} lacks entry {entry.key} and latency.measure_missing "
                               f"is false: fill it on the target machine with `python -m measure.lut build "
                               f"+space=<name> latency.table={self.path}` or set latency.measure_missing=true")

    def _runner(self, entry: Entry):
        return make_runner(entry.build(), backend=self.backend, shape=entry.input_shape(self.batch),
                           threads=self.threads, channels_last=self.channels_last,
                           name=f"latency-table entry {entry.key!r}")

    def _measure_block(self, entry: Entry) -> tuple[Latency, float]:
        """An entry (stem, block, head, empty graph) timed in alternation with the reference block
        (``measure.runner.paired_timing``): its latency and the reference block's p10 meanwhile."""
        run = self._runner(entry)  # (a failed export names the entry before anything else is built)
        lat, ref_ms, _ = time_paired(run, self._speed_probe().block_runner(), backend=self.backend,
                                     threads=self.threads, warmup=self.protocol["warmup"])
        return lat, ref_ms

    def _measure_paired(self, entry: Entry) -> tuple[Latency, float, dict]:
        """A whole network timed in alternation with the probe, then with the small probe
        (``measure.runner.paired_timing``): its latency, the probe's p10 meanwhile, and its ratio to the small
        probe with that probe's p10."""
        if self._probe is None:
            self._probe_ms()  # builds and warms the probe's runner
        return time_paired(self._runner(entry), self._probe.runner(), backend=self.backend, threads=self.threads,
                           warmup=self.protocol["warmup"], small=self._probe.small_runner())

    # -- predicting ------------------------------------------------------------------------------
    def raw_sum(self, arch: ArchSpec) -> float:
        """Sum of the entry latencies of ``arch`` (measuring missing entries when allowed)."""
        entries = arch_entries(arch, self.input_size)
        self.fill(entries)
        return sum(self.entries[e.key][self.statistic] for e in entries)

    def calls_ms(self, arch: ArchSpec) -> float:
        """The per-call cost the entries of ``arch`` pay and the network does not: the empty graph at each
        entry's input shape, summed, minus the one at the network's input (measuring missing ones)."""
        calls = call_entries(arch_entries(arch, self.input_size))
        own = call_entry(3, self.input_size)
        self.fill([*calls, own])
        return sum(self.entries[e.key][self.statistic] for e in calls) - self.entries[own.key][self.statistic]

    def cache_bytes(self) -> int | None:
        """The last-level cache of the machine this table times (the target's, over SSH), or None when unknown."""
        return self.target.describe().get("cache") if self.target is not None else runner.cache_bytes()

    def l2_bytes(self) -> int | None:
        """One core's L2 cache on the machine this table times (the target's, over SSH), or None when unknown."""
        return self.target.describe().get("l2") if self.target is not None else runner.l2_bytes()

    def features(self, arch: ArchSpec, cache: int | None, calls: bool = True, l2: int | None = None) -> dict:
        """What the model reads of ``arch`` (``measure.calibration.fit``'s row), measuring missing entries
        when allowed: the sum of its entries, its calls (0 unless ``calls``), its depthwise-first blocks, its
        weights read from memory, its feature maps (million elements, where the backend allocates them each pass), the
        elements crossing its entries' boundaries (million), its weights an ``l2``-byte cache holds alone (million)."""
        return {"sum_ms": self.raw_sum(arch), "calls_ms": self.calls_ms(arch) if calls else 0.0,
                "depthwise": calib.depthwise_first(arch),
                "cold_mweights": calib.cold_mweights(arch, self.input_size, cache) if cache else 0.0,
                "mfeatures": calib.mfeatures(arch, self.input_size, self.backend),
                "mboundary": calib.mboundary(arch, self.input_size), "mreload": calib.mreload(arch, l2, self.backend)}

    def predict(self, arch: ArchSpec) -> float:
        """Predicted end-to-end latency of ``arch`` in ms (``measure.calibration.predict``)."""
        cal = self.calibration_fit() or self.ensure_calibrated()  # a call weight of 0 needs no call timed
        return calib.predict(cal, self.features(arch, cal.get("cache_bytes"), calls=cal["call_weight"] > 0,
                                                l2=cal.get("l2_bytes")))

    @property
    def calibration_archs(self) -> list[ArchSpec]:
        if self._calibration_archs is None:
            self._calibration_archs = calib.calibration_set()
        return self._calibration_archs

    def calibration_fit(self) -> dict | None:
        """The stored fit, if it was made on the current calibration set for this statistic (a fit of an
        older bneck, of another set or of another statistic does not apply)."""
        cal = self.calibration
        if self._set_id is None:
            self._set_id = calib.set_id(self.calibration_archs)
        ok = (cal and cal.get("model") == calib.MODEL and cal.get("statistic") == self.statistic
              and cal.get("set") == self._set_id)
        return cal if ok else None

    def retimed(self) -> tuple[int, int] | None:
        """(entries timed again because their first ``passes`` disagreed by more than ``confirm``, entries timed
        under confirmation), or None when confirmation is off: how busy the machine was during the build, over
        every timing of it rather than the 5 probe timings at its start."""
        if not self.confirm or self.passes < 2:
            return None
        judged = [r for r in self.entries.values() if "settled" in r]
        return (sum(_passes(r) > self.passes for r in judged), len(judged)) if judged else None

    def distrust(self) -> str | None:
        """Why this table's predictions cannot be trusted, or None: the machine was busy when its unit was
        set (the probe's timings spread over ``calibration.BUSY``) or during the build (more than
        ``calibration.RETIMED`` of its entries timed again to confirm their fastest pass), or its fit misses
        calibration networks it was not fitted on by more than ``calibration.HELDOUT_LIMIT``. A fit on fewer
        than ``calibration.MIN_HELDOUT`` networks (the test suite's quick set) is not judged."""
        cal = self.calibration_fit()
        if not cal or cal.get("heldout_errors") is None:
            return None
        spread = (self.reference or {}).get("spread") or 0.0
        why = []
        if spread > calib.BUSY:
            why.append(f"the machine was busy when its unit was set (5 probe timings spread {spread:.1%}, over "
                       f"{calib.BUSY:.0%})")
        busy = busy_build(self.retimed(), self.passes, self.confirm)
        if busy:
            why.append(f"the machine was busy during the build ({busy})")
        off = calib.missed(cal)
        if off:
            why.append(f"it misses {len(off)} of {len(cal['heldout_errors'])} calibration networks it was not fitted "
                       f"on by more than {calib.HELDOUT_LIMIT:.0%} ({', '.join(off)})")
        return "; ".join(why) or None

    def ensure_calibrated(self, progress=None) -> dict:
        """The fit, made now on the calibration set when missing; refused when that needs timings the table lacks
        and may not measure. A table holding every timing the fit rests on (an older model's, or a format-2 table
        turned back into timings as timed) is refitted without measuring, on the cache size it was fitted with."""
        cal = self.calibration_fit()
        if cal is not None:
            return cal
        if not self.measure_missing and self.missing(self._calibration_entries()):
            raise MeasureError(f"latency table {self.path} is not calibrated for this bneck (no fit of latency model "
                               f"{calib.MODEL} on its calibration set, statistic {self.statistic}) and "
                               f"latency.measure_missing is false: "
                               f"calibrate it on the target machine with `python -m measure.lut build +space=<name> "
                               f"latency.table={self.path}`")
        return self.calibrate(progress=progress)

    def measure_networks(self, archs: list[ArchSpec], progress=None) -> list[dict]:
        """Time each of ``archs`` end to end as entries are timed (fastest of ``passes`` shuffled sweeps,
        probe around them), without storing them. Per network: ``ms`` (the table's statistic at the
        reference speed) and ``as_timed_ms`` (the same pass before conversion). ``progress``: one update
        per timing."""
        nets = [network_entry(a, self.input_size) for a in archs]
        timed = self.time_entries(nets, progress)
        return [timed[e.key] for e in nets]

    def time_entries(self, entries: Iterable[Entry], progress=None) -> dict[str, dict]:
        """Time ``entries`` afresh as the table times its own (fastest of ``passes`` shuffled sweeps, probe
        around them) without storing them: per key, ``ms`` (at the reference speed) and ``as_timed_ms``, and
        for a network ``probes_ratio`` (V3-Small / V3-Large around its fastest pass).
        What the table holds can then be checked against a timing of now."""
        records: dict[str, dict] = {}
        unique = list({e.key: e for e in entries}.values())
        with self._locked():  # no other table process times entries on this machine meanwhile
            new_unit, new_ratio, new_block = self.reference_ms is None, self.small_large is None, self.block_ms is None
            self._sweep(unique, records, save=False, progress=progress)
            self._settle_small(records)  # a table not calibrated yet: the probes' ratio of these timings
            if (new_unit or (new_ratio and self.small_large is not None)
                    or (new_block and self.block_ms is not None)):  # keep these figures' unit for the next call
                self._save()
        out = {}
        for e in unique:
            fastest = min(records[e.key]["passes"], key=lambda t: t[self.statistic])
            scale = fastest["factor"] * (fastest.get("small") or {}).get("c", 1.0)
            out[e.key] = {"ms": fastest[self.statistic], "as_timed_ms": fastest[self.statistic] / scale}
            if fastest.get("small"):  # the host's state beside this timing: the two probes' ratio around it
                out[e.key]["probes_ratio"] = fastest["small"]["ms"] / fastest["small"]["large_ms"]
        return out

    def calibrate(self, archs: Iterable[ArchSpec] | None = None, progress=None) -> dict:
        """Fit the model (``measure.calibration.fit``) on ``archs`` (default: the calibration set) measured
        end to end, check it leave-one-out (``heldout_errors``), and store it.

        The networks' timings are entries of the table (``net_...``): a build fills them in the same
        sweeps as the blocks, so both see the same spells of the machine, and a resumed build keeps them.
        The fit is a function of those stored timings only, so whoever computes it gets the same one.
        """
        archs = list(self.calibration_archs if archs is None else archs)
        nets = [network_entry(a, self.input_size) for a in archs]
        self.fill(self._calibration_entries(archs), progress)
        if self._provisional():
            with self._locked():
                self._settle_unit()
        if self.small_large is None:  # a table whose unit was settled before it timed networks against both probes
            with self._locked():
                self._settle_small(self.entries)
                self._save()
        stored = self.calibration or {}  # the target's caches, when the table was copied here
        keep = not self.measure_missing
        cache = stored["cache_bytes"] if keep and stored.get("cache_bytes") else self.cache_bytes()
        l2 = stored["l2_bytes"] if keep and stored.get("l2_bytes") else self.l2_bytes()
        rows = [self.features(a, cache, l2=l2) for a in archs]
        measured = [self.entries[e.key][self.statistic] for e in nets]
        terms = calib.fit(rows, measured)
        errors = [round(calib.predict(terms, r) / m - 1, 5) for r, m in zip(rows, measured)]
        with self._locked():
            self.calibration = {"model": calib.MODEL, **terms, "cache_bytes": cache, "l2_bytes": l2,
                                "statistic": self.statistic,
                                "set": calib.set_id(archs), "networks": PAIRED, "entries": BLOCKS,
                                "fit": "relative error, all terms >= 0",
                                "names": calib.names(archs), **calib.columns(rows), "measured_ms": measured,
                                "errors": errors,
                                "heldout_errors": calib.heldout(rows, measured)}
            self._save()
        return self.calibration

    def calibration_keys(self) -> set[str]:
        """The keys of the entries the calibration rests on (``_calibration_entries``)."""
        return {e.key for e in self._calibration_entries()}

    def _calibration_entries(self, archs: list[ArchSpec] | None = None) -> list[Entry]:
        """Every part of every calibration network, the empty graphs at their input shapes, and the networks."""
        archs = self.calibration_archs if archs is None else archs
        parts = [e for a in archs for e in arch_entries(a, self.input_size)]
        return [*parts, *call_entries(parts), call_entry(3, self.input_size),
                *(network_entry(a, self.input_size) for a in archs)]


def busy_build(retimed: tuple[int, int] | None, passes: int, confirm: float) -> str | None:
    """What ``LatencyTable.retimed`` says of the build when more than ``calibration.RETIMED`` of its entries were
    timed again, else None."""
    if not retimed or retimed[0] <= calib.RETIMED * retimed[1]:
        return None
    again, n = retimed
    return (f"{again} of {n} entries ({again / n:.0%}, over {calib.RETIMED:.0%}) were timed again because their "
            f"first {passes} passes differed by more than {confirm:.0%}")


def _rescale(records: dict, which, k: float) -> None:
    """Scale the stored timings of the records whose key ``which`` accepts by ``k`` (a unit settled: their factor is
    unit / the speed they were timed at)."""
    for key, record in records.items():
        if not which(key):
            continue
        for timing in record["passes"]:
            for f in ("p10", "median", "iqr", "factor"):
                timing[f] = round(timing[f] * k, 5)
        record.update({f: min(x[f] for x in record["passes"]) for f in ("p10", "median")})


def _passes(record: dict | None) -> int:
    return len(record["passes"]) if record else 0


def _timing(lat: Latency, factor: float) -> dict:
    """One paired timing converted to the table's unit (ms), with the factor it was converted by."""
    return {"p10": round(lat.p10_ms * factor, 5), "median": round(lat.median_ms * factor, 5),
            "iqr": round(lat.spread_ms * factor, 5), "n": lat.repeats, "factor": round(factor, 5), "paired": True}


def _current(entries: dict, sized: bool = False) -> dict:
    """``entries`` without timings of an older protocol (timed alone, not paired with the probe or the reference
    block; with ``sized``, a network of a table before format 4: not timed against the small probe): they are timed
    again."""
    def current(key: str, t: dict) -> bool:
        return bool(t.get("paired")) and (not sized or not is_network(key) or "small" in t)

    out = {}
    for key, record in entries.items():
        if not all(current(key, t) for t in record["passes"]):
            kept = None
            for timing in (t for t in record["passes"] if current(key, t)):
                kept = _with_pass(kept, timing)
            if kept is None:
                continue
            record = kept
        out[key] = record
    return out


def size_weight(ms: float, small_ms: float, large_ms: float) -> float:
    """Where a network timed at ``ms`` lies between the small and the large probe (log scale): 0 at the small
    probe's latency and below, 1 at the large one's and above."""
    if large_ms <= small_ms or ms <= 0:
        return 1.0
    return min(1.0, max(0.0, math.log(ms / small_ms) / math.log(large_ms / small_ms)))


def _sized(lat: Latency, probe_ms: float, small: dict | None) -> dict | None:
    """What a pass keeps of a network's timing against the small probe: its ratio, the two probes' p10s and its
    weight (``size_weight`` of its own p10); ``c``, the factor it is converted by, is 1 until applied."""
    if small is None:
        return None
    return {"ratio": round(small["ratio"], 6), "ms": round(small["ms"], 5), "large_ms": round(probe_ms, 5),
            "w": round(size_weight(lat.p10_ms, small["ms"], probe_ms), 4), "c": 1.0}


def _size_corrected(timing: dict, unit: float | None, small_large: float | None) -> dict:
    """A network's pass converted by both probes: its figure at the unit by the large probe (ratio x unit) times
    ``(small-probe figure / large-probe figure) ** (1 - w)``, the small-probe figure being its ratio to the small
    probe x the build's ``small_large`` x the unit. The factor applied before (``c``) is undone first, so this
    can be applied again when the unit or the ratio settles. Unchanged while either is unknown."""
    small = timing.get("small")
    if not small or unit is None or small_large is None:
        return timing
    base = {f: timing[f] / small["c"] for f in ("p10", "median", "iqr")}  # by the large probe alone, at the unit
    c = (small["ratio"] * small_large * unit / base["p10"]) ** (1 - small["w"])
    return {**timing, **{f: round(v * c, 5) for f, v in base.items()}, "small": {**small, "c": round(c, 6)}}


def _ratio(small_large: float | None) -> dict:
    """The probes' ratio as a reference holds it (nothing when unknown)."""
    return {} if small_large is None else {"small_large": round(small_large, 5), "small_from": 0}


def _with_pass(record: dict | None, timing: dict) -> dict:
    """``record`` with one more timing; an entry's figures are the fastest of its passes."""
    passes = (record["passes"] if record else []) + [timing]
    return {"p10": min(t["p10"] for t in passes), "median": min(t["median"] for t in passes), "passes": passes}
