"""``latency_model(cfg)``: the one callable search and NetAdapt use to cost an architecture."""
from __future__ import annotations

from collections.abc import Mapping

from space import ArchSpec

from .latency import Latency, MeasureError, check_backend, check_statistic, measure_latency
from .table import LatencyTable

SOURCES = ("lut", "measured")
KEYS = {"source", "backend", "threads", "input_size", "batch", "channels_last", "table", "measure_missing",
        "warmup", "repeats", "max_rel_spread", "max_rounds", "statistic", "passes"}


class LatencyModel:
    """``model(arch) -> ms``. ``name`` says where numbers come from (``lut:onnxruntime:t1:224``)."""

    source: str
    name: str

    def __call__(self, arch: ArchSpec) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class MeasuredLatency(LatencyModel):
    """Times the whole network end to end on every call (``statistic``: p10 or median ms)."""

    source = "measured"

    def __init__(self, backend="onnxruntime", threads=1, input_size=224, batch=1, channels_last=False,
                 statistic="p10", **protocol):
        self.statistic = check_statistic(statistic)
        self.options = dict(backend=check_backend(backend), threads=threads, input_size=input_size, batch=batch,
                            channels_last=channels_last, **protocol)
        self.name = f"measured:{backend}:t{threads}:{input_size}"

    def measure(self, arch: ArchSpec) -> Latency:
        return measure_latency(arch, **self.options)

    def __call__(self, arch: ArchSpec) -> float:
        return self.measure(arch).value(self.statistic)


class TableLatency(LatencyModel):
    """Predicts from the per-block lookup table, measuring missing entries lazily (when allowed)."""

    source = "lut"

    def __init__(self, table: LatencyTable):
        self.table = table
        self.name = table.name

    def __call__(self, arch: ArchSpec) -> float:
        return self.table.predict(arch)


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
    opts = {k: v for k, v in cfg.items() if v is not None}
    if source == "measured":
        if opts.pop("passes", None) not in (None, 1):
            raise MeasureError("latency.passes applies to the lookup table (latency=lut): the measured source "
                               "times each network once per call")
        return MeasuredLatency(**opts)
    if source != "lut":
        raise MeasureError(f"unknown latency source {source!r}: use latency=lut or latency=measured")
    if table:
        from pathlib import Path

        path = Path(str(table))
        if not path.is_file() and not measure_missing:
            raise MeasureError(f"latency table {path} does not exist: build it with `python -m measure.lut build "
                               f"+space=<name>` or fix latency.table")
        return TableLatency(LatencyTable(path, measure_missing=bool(measure_missing), **opts))
    return TableLatency(LatencyTable.open(results_dir, measure_missing=bool(measure_missing), **opts))
