"""What NetAdapt shrinks against: latency (lookup table or measured) or MACs, as ``arch -> float``.

MACs are ``measure.count_macs``: a closed form on the spec, so a proposal scan over hundreds of
architectures costs microseconds each (see ``measure.macs``).
"""
from __future__ import annotations

from collections.abc import Callable

from measure import count_macs
from space import ArchSpec

RESOURCES = ("latency", "macs")


def resource_fn(resource: str, latency: Callable[[ArchSpec], float], input_size: int) -> Callable[[ArchSpec], float]:
    """The cost NetAdapt cuts: ``latency`` itself, or MACs at the latency model's input size."""
    if resource == "latency":
        return latency
    if resource == "macs":
        return lambda arch: float(count_macs(arch, input_size))
    raise ValueError(f"resource={resource!r} is unknown: use one of {', '.join(RESOURCES)}")


def memo(latency):
    """The latency model with one number per arch: a measured latency is not re-drawn."""
    cache: dict[ArchSpec, float] = {}

    def cost(arch: ArchSpec) -> float:
        if arch not in cache:
            cache[arch] = float(latency(arch))
        return cache[arch]

    cost.name = latency.name
    cost.raw_ms = latency.raw_ms  # the figure as timed, kept by the model for the one measurement
    return cost


def prepared(model, log):
    """``model``, prepared before its first number (a lookup table calibrates on its fixed set, the same
    whichever command touches the table first)."""
    done = model.prepare()
    if done:
        log(done)
    return model
