"""``costs(arch, latency_model)``: the one way to cost a network (search, NetAdapt, ``measure.show``)."""
from __future__ import annotations

from dataclasses import dataclass

from space import ArchSpec

from .macs import count_macs, count_params


@dataclass
class Costs:
    latency_ms: float | None  # None when no latency model was given
    macs: int  # at ``input_size``, 1000 classes (see ``measure.macs`` for the convention)
    params: int  # with 1000 classes, as published figures
    latency_raw_ms: float | None = None  # a measured latency as timed, before conversion to the table's unit


def costs(arch: ArchSpec, latency_model=None, *, input_size: int = 224) -> Costs:
    """Latency (by ``latency_model``, any ``arch -> ms`` callable: a ``LatencyModel`` or a memo of one),
    MACs at ``input_size`` -- the latency model's input size, so both describe one deployed network --
    and parameters of ``arch`` with 1000 classes."""
    latency = None if latency_model is None else float(latency_model(arch))
    raw = getattr(latency_model, "raw_ms", None)  # only measured models have one
    return Costs(latency, int(count_macs(arch, input_size)), int(count_params(arch, num_classes=1000)),
                 None if raw is None else raw(arch))
