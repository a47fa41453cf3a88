"""``latency_model(cfg)``: the one callable search and NetAdapt use to cost an architecture."""
from __future__ import annotations

from collections.abc import Mapping

from space import ArchSpec

from . import calibration as calib
from .latency import MeasureError
from .table import PAIRED, LatencyTable, machine_id

SOURCES = ("lut", "measured")
KEYS = {"source", "backend", "threads", "input_size", "batch", "channels_last", "table", "measure_missing",
        "warmup", "repeats", "max_rel_spread", "max_rounds", "statistic", "unit", "passes", "confirm", "max_passes",
        "accept_changed", "foreign_ok", "accept_untrusted", "target", "target_python"}
# What a result's latency record must match on a rerun: the model and the table content it rests on.
# The table path and machine are recorded, not compared: workers elsewhere read copies of one table.
COMPARED = ("name", "statistic", "hash")


class LatencyModel:
    """``model(arch) -> ms``. ``name`` says where numbers come from (``lut:onnxruntime:t1:224``)."""

    source: str
    name: str

    def __call__(self, arch: ArchSpec) -> float:
        raise NotImplementedError

    def prepare(self) -> str | None:
        """Make the model ready before its first number; returns what was done, for the log, or None.
        Callers need not know which model they hold."""
        return None

    def raw_ms(self, arch: ArchSpec) -> float | None:
        """The wall-clock ms behind the last figure for ``arch`` before conversion, when it was measured."""
        return None

    def describe(self) -> dict:
        """What a result records about the latency model (study settings, NetAdapt's run.json
        and summary.json); ``COMPARED`` keys must match on a rerun (``changed``)."""
        return {"name": self.name, "source": self.source}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class MeasuredLatency(LatencyModel):
    """Times the whole network end to end on every call, as the lookup table times its calibration
    networks: paired with the probes (``measure.table``), the fastest of ``passes`` such timings, in the table's
    unit, so networks timed an hour apart on a drifting machine compare (and compare with table predictions).
    Nothing but the table's reference is written to it."""

    source = "measured"

    def __init__(self, table: LatencyTable):
        self.table = table
        self.name = f"measured:{table.backend}:t{table.threads}:{table.input_size}"
        self._raw: dict[ArchSpec, float] = {}

    def __call__(self, arch: ArchSpec) -> float:
        timed = self.table.measure_networks([arch])[0]
        self._raw[arch] = timed["as_timed_ms"]
        return timed["ms"]

    def raw_ms(self, arch: ArchSpec) -> float | None:
        return self._raw.get(arch)

    def prepare(self) -> str | None:
        """Set the table's unit before the first number, so a result records the unit it is in."""
        if not self.table.ensure_reference():
            return None
        ref = self.table.reference
        if "own_ms" in ref:  # the machine's unit, kept across its tables (measure.unit)
            return (f"set the reference speed of {self.table.path}: the machine's unit, probe {ref['ms']:.3f} ms; "
                    f"now {ref['own_ms']:.3f} ms, median of {len(ref['timings'])} timings (spread {ref['spread']:.1%})")
        return (f"set the reference speed of {self.table.path}: probe {ref['ms']:.3f} ms, median of "
                f"{len(ref['timings'])} timings (spread {ref['spread']:.1%})")

    def describe(self) -> dict:
        t = self.table
        return {**super().describe(), "table": str(t.path), "machine": t.machine, "statistic": t.statistic,
                **t.sweeps, "timing": PAIRED, "reference": t.reference, "hash": t.content_hash(entries=False)}


class TableLatency(LatencyModel):
    """Predicts from the per-block lookup table, measuring missing entries lazily (when allowed).

    A table that ``LatencyTable.distrust`` judges untrustworthy (built on a busy machine, or missing held-out
    calibration networks by more than 10%) is refused before its first prediction unless
    ``accept_untrusted``: a search or NetAdapt run would rank networks by the table's error."""

    source = "lut"

    def __init__(self, table: LatencyTable, accept_untrusted: bool = False):
        self.table = table
        self.name = table.name
        self.accept_untrusted = accept_untrusted
        self._checked = False

    def __call__(self, arch: ArchSpec) -> float:
        if not self._checked:
            self.table.ensure_calibrated()
            self._check()
        return self.table.predict(arch)

    def prepare(self) -> str | None:
        """Calibrate the table on its fixed calibration set unless it has a fit (refused when it may not
        measure), then refuse it if it is untrusted. Run before the first prediction, so every number of a
        run is in one calibration."""
        done = None
        if self.table.calibration_fit() is None:
            cal = self.table.ensure_calibrated()
            done = (f"calibrated {self.table.path} on {len(cal['sums_ms'])} networks: {describe_fit(cal)}")
        self._check()
        return done

    def _check(self) -> None:
        why = self.table.distrust()
        self._checked = True
        if why and not self.accept_untrusted:
            raise MeasureError(f"latency table {self.table.path} cannot be trusted: {why}; delete it and build it "
                               f"again on a quiet machine (`python -m measure.lut build +space=<name>`), or pass "
                               f"latency.accept_untrusted=true to use it anyway")

    def describe(self) -> dict:
        t, cal = self.table, self.table.calibration_fit() or {}
        held = cal.get("heldout_errors")
        return {**super().describe(), "table": str(t.path), "machine": t.machine, "statistic": t.statistic,
                **t.sweeps, "reference": t.reference, "hash": t.content_hash(),
                "calibration": {**{k: cal.get(k) for k in ("model", *calib.TERMS, "cache_bytes", "l2_bytes", "set")},
                                "heldout_worst": max(held, key=abs) if held else None} if cal else None}


def describe_fit(cal: dict) -> str:
    """A fit in one phrase, for logs: its terms and its held-out error."""
    held = cal.get("heldout_errors")
    worst = f"held-out worst {max(held, key=abs):+.1%}" if held else "no held-out check"
    cache = (f"{cal['cache_bytes'] / 2 ** 20:g} MiB cache" if cal.get("cache_bytes")
             else "cache size unknown: no memory term")
    l2 = f"{cal['l2_bytes'] / 2 ** 20:g} MiB L2" if cal.get("l2_bytes") else "L2 size unknown: no reload term"
    return (f"call weight {cal['call_weight']:.2f}, {cal['depthwise_ms']:.3f} ms per depthwise-first block, "
            f"{cal['cold_ms']:.3f} ms per million weights read from memory ({cache}), {cal['feature_ms']:.3f} ms per "
            f"million feature-map elements, {cal.get('boundary_ms', 0.0):.3f} ms per million elements crossing an "
            f"entry's boundary, {cal.get('reload_ms', 0.0):.3f} ms per million weights reloaded into the L2 "
            f"({l2}) ({worst})")


def changed(old, new: dict) -> str | None:
    """How the latency record ``new`` differs from the ``old`` one a result was made with, or None.

    An ``old`` that is a plain name comes from before latency records: only the name is compared."""
    if isinstance(old, str) or old is None:
        return None if old in (None, new["name"]) else f"model {old} -> {new['name']}"
    diff = [k for k in COMPARED if old.get(k) != new.get(k)]
    if not diff:
        return None
    what = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in diff)
    cal_old, cal_new = old.get("calibration") or {}, new.get("calibration") or {}
    terms = ("model", *calib.TERMS, "cache_bytes", "l2_bytes")
    if any(cal_old.get(k) != cal_new.get(k) for k in terms):
        what += " (calibration " + ", ".join(f"{k} {cal_old.get(k)} -> {cal_new.get(k)}" for k in terms
                                            if cal_old.get(k) != cal_new.get(k)) + ")"
    ref_old, ref_new = (old.get("reference") or {}).get("ms"), (new.get("reference") or {}).get("ms")
    if ref_old != ref_new:
        what += f" (reference speed {ref_old} -> {ref_new} ms)"
    return what


def latency_model(cfg, results_dir="results") -> LatencyModel:
    """The latency model the Hydra group ``latency`` describes (``conf/latency/*.yaml``)."""
    if not isinstance(cfg, Mapping):
        raise MeasureError(f"latency config must be a mapping (the Hydra group `latency`), got {type(cfg).__name__}")
    cfg = dict(cfg)
    unknown = set(cfg) - KEYS
    if unknown:
        raise MeasureError(f"unknown latency keys {sorted(unknown)}: allowed are {', '.join(sorted(KEYS))}")
    source = cfg.pop("source", "lut")
    table = cfg.pop("table", None)
    measure_missing = cfg.pop("measure_missing", True)
    cfg.pop("accept_changed", None)  # read by the callers that compare records (search, NetAdapt)
    foreign_ok = cfg.pop("foreign_ok", False)
    accept_untrusted = bool(cfg.pop("accept_untrusted", False))
    from .remote import open_target  # None for `local`: time on this machine

    target = open_target(cfg.pop("target", None) or "local", cfg.pop("target_python", None) or "python3",
                         cfg.get("backend") or "onnxruntime")
    opts = {k: v for k, v in cfg.items() if v is not None}
    if source not in SOURCES:
        raise MeasureError(f"unknown latency source {source!r}: use latency=lut or latency=measured")
    if table:
        from pathlib import Path

        path = Path(str(table))
        if not path.is_file() and not measure_missing and source == "lut":
            raise MeasureError(f"latency table {path} does not exist: build it with `python -m measure.lut build "
                               f"+space=<name>` or fix latency.table")
        lut = LatencyTable(path, measure_missing=bool(measure_missing), target=target, **opts)
    else:
        lut = LatencyTable.open(results_dir, measure_missing=bool(measure_missing), target=target, **opts)
    here = (lambda: machine_id() if target is None else target.machine)  # a target is asked only when needed
    if source == "measured" and not foreign_ok and lut.machine not in (None, here()):
        # measured converts this machine's timings by the probe speed of the table's machine: a ratio of
        # two machines' V3-Large timings, not a drift correction
        raise MeasureError(f"latency table {lut.path} was made on machine {lut.machine}, not this one "
                           f"({here()}): latency=measured would rescale this machine's timings by another's "
                           f"probe; drop latency.table to use this machine's own, or pass latency.foreign_ok=true")
    return MeasuredLatency(lut) if source == "measured" else TableLatency(lut, accept_untrusted)
