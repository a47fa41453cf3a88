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


def costs(arch: ArchSpec, latency_model=None, *, input_size: int = 224) -> Costs:
    """Latency (by ``latency_model``, any ``arch -> ms`` callable: a ``LatencyModel`` or a memo of one),
    MACs at ``input_size`` -- the latency model's input size, so both describe one deployed network --
    and parameters of ``arch`` with 1000 classes."""
    latency = None if latency_model is None else float(latency_model(arch))
    return Costs(latency, int(count_macs(arch, input_size)), int(count_params(arch, num_classes=1000)))
