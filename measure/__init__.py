"""bneck's measurement layer: MACs, parameters and latency (measured, or predicted by a per-block table).

Knows nothing of Optuna or NetAdapt: everything takes an ``ArchSpec``.
"""
from .costs import Costs, costs
from .latency import BACKENDS, Latency, MeasureError, measure_latency
from .macs import count_macs, count_params
from .model import LatencyModel, latency_model
from .onnx import export_onnx
from .table import LatencyTable, machine_id
from .traced import traced_macs, unhandled_ops

__all__ = [
    "BACKENDS", "Costs", "Latency", "LatencyModel", "LatencyTable", "MeasureError", "costs", "count_macs",
    "count_params", "export_onnx", "latency_model", "machine_id", "measure_latency", "traced_macs", "unhandled_ops",
]
