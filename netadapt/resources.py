"""What NetAdapt shrinks against: latency (lookup table or measured) or MACs, as ``arch -> float``.

MACs come from a closed form on the spec rather than ``measure.count_macs``: a proposal scan costs
hundreds of architectures and tracing each one takes over a second, while the closed form takes
microseconds. It follows ``measure.count_macs``'s convention (conv and linear multiply-adds only,
1000 classes) and a test checks the two agree.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from space import ArchSpec, se_width

RESOURCES = ("latency", "macs")


def _out_side(side: int, stride: int) -> int:
    return -(-side // stride)  # "same" padding: ceil(side / stride)


@lru_cache(maxsize=65536)
def spec_macs(arch: ArchSpec, input_size: int = 224, num_classes: int = 1000) -> int:
    """Conv + linear multiply-adds of one image, as ``measure.count_macs`` counts them."""
    side = _out_side(input_size, 2)
    macs = 3 * arch.stem * 9 * side * side
    for cin, b in zip(arch.in_channels(), arch.blocks):
        if b.has_expand(cin):
            macs += cin * b.expand * side * side
        side = _out_side(side, b.stride)
        macs += b.expand * b.kernel * b.kernel * side * side
        if b.se:
            macs += 2 * b.expand * se_width(b.expand)
        macs += b.expand * b.out * side * side
    macs += arch.blocks[-1].out * arch.last_conv * side * side
    return macs + arch.last_conv * arch.head + arch.head * num_classes


def resource_fn(resource: str, latency: Callable[[ArchSpec], float], input_size: int) -> Callable[[ArchSpec], float]:
    """The cost NetAdapt cuts: ``latency`` itself, or MACs at the latency model's input size."""
    if resource == "latency":
        return latency
    if resource == "macs":
        return lambda arch: float(spec_macs(arch, input_size))
    raise ValueError(f"resource={resource!r} is unknown: use one of {', '.join(RESOURCES)}")
