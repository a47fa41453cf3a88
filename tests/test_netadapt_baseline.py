"""The width-multiplier baseline: ``match_multiplier`` finds the largest multiplier whose cost fits."""
from __future__ import annotations

import pytest

from measure import count_macs
from netadapt.baseline import match_multiplier
from space import V3_LARGE, V3_SMALL, scale_width

LO, HI, ROUNDS = 0.05, 1.0, 14
RESOLUTION = (HI - LO) / 2**ROUNDS  # the bisection's last bracket


def macs(arch) -> float:
    return float(count_macs(arch, input_size=224))


def widths(arch) -> int:
    """A synthetic staircase: the sum of every width, each a multiple of 8 after scaling."""
    return arch.stem + sum(b.expand + b.out for b in arch.blocks) + arch.last_conv + arch.head


def shape(arch) -> tuple:
    """Everything but the name (``scale_width`` names a network after its multiplier)."""
    return arch.stem, arch.blocks, arch.last_conv, arch.head


def largest_fitting(start, cost, target, step: float = 1e-4):
    """The widest network on a fine scan of the multiplier whose cost is <= target (independent of bisection)."""
    best = None
    for i in range(round((HI - LO) / step) + 1):
        arch = scale_width(start, LO + i * step)
        if cost(arch) <= target:
            best = arch
    return best


@pytest.mark.parametrize("start, cost, fraction", [
    (V3_SMALL, macs, 0.5), (V3_SMALL, macs, 0.8), (V3_LARGE, macs, 0.3), (V3_SMALL, widths, 0.6),
])
def test_returns_the_largest_multiplier_under_the_target(start, cost, fraction):
    target = fraction * cost(start)
    calls = []
    m, arch, value = match_multiplier(start, lambda a: calls.append(a) or cost(a), target)
    assert arch == scale_width(start, m) and value == cost(arch) <= target
    # The next stair costs more: a step past the bisection's resolution is over the target ...
    assert cost(scale_width(start, m + 1.5 * RESOLUTION)) > target
    # ... and no wider network of the width grid fits: a fine scan lands on the very same stair.
    assert shape(largest_fitting(start, cost, target)) == shape(arch)
    assert len(calls) == len(set(calls)) <= ROUNDS + 1  # each network costed once


def test_a_target_below_the_narrowest_network_returns_lo_and_its_cost():
    narrowest = scale_width(V3_SMALL, LO)
    m, arch, value = match_multiplier(V3_SMALL, macs, macs(narrowest) - 1)
    assert (m, arch, value) == (LO, narrowest, macs(narrowest))  # the caller reports it is over the target
    m, arch, value = match_multiplier(V3_SMALL, macs, macs(narrowest))  # exactly the narrowest: it fits
    assert value == macs(narrowest) and shape(arch) == shape(narrowest)
    assert macs(scale_width(V3_SMALL, m + 1.5 * RESOLUTION)) > macs(narrowest)


def test_a_target_above_the_start_returns_the_start_width():
    m, arch, value = match_multiplier(V3_SMALL, macs, 2 * macs(V3_SMALL))
    assert HI - RESOLUTION <= m < HI and shape(arch) == shape(V3_SMALL) and value == macs(V3_SMALL)
