"""One dict of costs per architecture, for ``python -m measure.show`` and reports."""
from __future__ import annotations

from space import ArchSpec

from .macs import count_macs, count_params


def describe(arch: ArchSpec, latency=None, input_size: int = 224) -> dict:
    """``params``, ``macs`` and, when ``latency`` (a ``LatencyModel``) is given, ``latency_ms`` and
    ``latency_source`` (its name, e.g. ``lut:onnxruntime:t1:224`` or ``measured:torch:t1:224``)."""
    info = {"params": count_params(arch), "macs": count_macs(arch, input_size)}
    if latency is not None:
        info["latency_ms"] = round(float(latency(arch)), 3)
        info["latency_source"] = latency.name
    return info
