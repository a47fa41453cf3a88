"""The width-multiplier baseline: the start network scaled to NetAdapt's final cost."""
from __future__ import annotations

from collections.abc import Callable

from space import ArchSpec, scale_width


def match_multiplier(start: ArchSpec, cost: Callable[[ArchSpec], float], target: float,
                     lo: float = 0.05, hi: float = 1.0, rounds: int = 14) -> tuple[float, ArchSpec, float]:
    """(m, scale_width(start, m), its cost) with the largest m whose cost <= target, by bisection.

    Widths round to multiples of 8, so cost is a staircase in m: bisection finds the stair just at
    or below ``target``. If even ``lo`` costs more, ``lo`` is returned (the caller reports the cost).
    """
    seen: dict[ArchSpec, float] = {}

    def c(m: float) -> tuple[ArchSpec, float]:
        arch = scale_width(start, m)
        if arch not in seen:
            seen[arch] = cost(arch)
        return arch, seen[arch]

    arch_lo, cost_lo = c(lo)
    if cost_lo > target:
        return lo, arch_lo, cost_lo
    for _ in range(rounds):
        mid = (lo + hi) / 2
        arch, value = c(mid)
        if value <= target:
            lo, arch_lo, cost_lo = mid, arch, value
        else:
            hi = mid
    return lo, arch_lo, cost_lo
