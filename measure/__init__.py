"""bneck's measurement layer: MACs, parameters and latency (measured, or predicted by a per-block table).

Knows nothing of Optuna or NetAdapt: everything takes an ``ArchSpec``.
"""
from .describe import describe
from .latency import BACKENDS, Latency, MeasureError, measure_latency
from .macs import count_macs, count_params, unhandled_ops
from .model import LatencyModel, latency_model
from .table import LatencyTable, machine_id

__all__ = [
    "BACKENDS", "Latency", "LatencyModel", "LatencyTable", "MeasureError", "count_macs", "count_params", "describe",
    "latency_model", "machine_id", "measure_latency", "unhandled_ops",
]
