"""bneck's measurement layer: MACs, parameters and latency (measured, or predicted by a per-block table).

Knows nothing of Optuna or NetAdapt: everything takes an ``ArchSpec``.
"""
from core.lazy import lazy_getattr

from .errors import MeasureError

__all__ = [
    "arch_entries", "BACKENDS", "block_entry", "block_reference", "calibration_summary", "build_table",
    "cached_program",
    "compare_table", "Costs", "costs", "count_macs", "count_params", "export_onnx", "full_set", "host_noise", "Latency",
    "host_sweep", "is_network",
    "latency_model", "LatencyModel", "LatencyTable", "machine_id", "make_runner", "measure_latency", "MeasureError",
    "network_entry", "open_target", "ort_runner", "runner_runtime", "space_entries", "scale_heldout", "refit_model",
    "predict_model", "named_full_set", "mboundary", "reload_mweights", "l2_bytes", "calibration_rows", "SpeedProbe",
    "size_weight", "tercile_bias", "count_activations", "time_callable", "time_paired", "time_runner", "traced_macs",
    "unhandled_ops", "validation_archs", "within",
]


# Loaded on first use: importing the package (or its torch-free ``measure.settings``, which every command's
# settings read) stays light and free of import cycles, so bad input and --help answer before torch loads;
# benchmarks and scripts reach these through the package's public names instead of its modules.
_LAZY = {
    "Costs": "measure.cost",
    "costs": "measure.cost",
    "BACKENDS": "measure.latency",
    "Latency": "measure.latency",
    "measure_latency": "measure.latency",
    "count_macs": "measure.macs",
    "count_params": "measure.macs",
    "count_activations": "measure.macs",
    "LatencyModel": "measure.model",
    "latency_model": "measure.model",
    "export_onnx": "measure.onnx",
    "LatencyTable": "measure.table",
    "machine_id": "measure.table",
    "traced_macs": "measure.traced",
    "unhandled_ops": "measure.traced",
    "full_set": "measure.calibration",
    "calibration_summary": "measure.calibration:summary",
    "scale_heldout": "measure.calibration",
    "refit_model": "measure.calibration:refit",
    "predict_model": "measure.calibration:predict",
    "named_full_set": "measure.calibration",
    "mboundary": "measure.calibration",
    "reload_mweights": "measure.calibration",
    "calibration_rows": "measure.calibration:rows_of",
    "l2_bytes": "measure.runner",
    "host_noise": "measure.noise",
    "host_sweep": "measure.noise:sweep",
    "arch_entries": "measure.entries",
    "block_entry": "measure.entries",
    "network_entry": "measure.entries",
    "is_network": "measure.entries",
    "space_entries": "measure.entries",
    "make_runner": "measure.latency",
    "time_runner": "measure.latency",
    "time_paired": "measure.latency",
    "size_weight": "measure.table",
    "build_table": "measure.lut:build",
    "compare_table": "measure.lut:compare",
    "validation_archs": "measure.lut",
    "within": "measure.lut",
    "tercile_bias": "measure.lut",
    "cached_program": "measure.executorch",
    "SpeedProbe": "measure.probe",
    "block_reference": "measure.probe",
    "open_target": "measure.remote",
    "ort_runner": "measure.onnx",
    "runner_runtime": "measure.runner:runtime",
    "time_callable": "measure.runner",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
