"""What a latency table is calibrated on, and how predictions are fitted to it.

**One fixed set.** Every table is calibrated on the same networks, whoever touches it first (a search
on either space, NetAdapt, ``measure.lut build``), so a prediction never depends on which command ran
first. The set spans from below the smallest reference to above the largest point of every built-in
space: MobileNetV3-Small at x0.35 and x0.5, both references, V3-Large at x0.5, x0.75 and x1.25, and per
space (``conf/space/*.yaml``) its thinnest and widest point and two seeded random ones. A table stores
the id of the set it was fitted on; adding a space changes the set, and the table is refitted (or,
when it may not measure, refused with the fix). ``BNECK_CALIBRATION_SET=quick`` swaps in two tiny
networks: for the test suite, whose many fresh tables would otherwise each spend a minute calibrating.

**Relative error.** predicted = scale x (sum of entries) + overhead, fitted so that the *relative*
errors are smallest (each residual divided by the measured latency), with scale and overhead >= 0.
A least-squares line in absolute ms is dominated by the largest networks and its free offset can go
negative: one table fitted -0.56 ms and predicted V3-Small 20% low although its raw sum was 2% off.
"""
from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence

from space import V3_LARGE, V3_SMALL, ArchSpec, BlockSpec, SearchSpace, available_spaces, format_arch, scale_width
from space.skeleton import last_conv_width

RANDOM_PER_SPACE = 2
ENV = "BNECK_CALIBRATION_SET"


def calibration_set() -> list[ArchSpec]:
    """The networks every table is calibrated on: ``full_set()``, or ``quick_set()`` for tests (module note)."""
    return quick_set() if os.environ.get(ENV) == "quick" else full_set()


def quick_set() -> list[ArchSpec]:
    """Two tiny networks (a stem, two blocks, a head): a fit of the pipeline, not of a machine."""
    small = ArchSpec(8, (BlockSpec(3, 16, 8), BlockSpec(3, 24, 16, True, "HS", 2)), 96, 32)
    return [small, small.with_blocks([BlockSpec(5, 48, 8), BlockSpec(5, 64, 24, True, "HS", 2)])]


def full_set() -> list[ArchSpec]:
    """Both references at several widths and the extremes of every built-in space, without duplicates."""
    archs = [scale_width(V3_SMALL, 0.35), scale_width(V3_SMALL, 0.5), V3_SMALL,
             scale_width(V3_LARGE, 0.5), scale_width(V3_LARGE, 0.75), V3_LARGE, scale_width(V3_LARGE, 1.25)]
    for name in available_spaces():
        space = SearchSpace.load(name)
        archs += [extreme(space, largest=False), extreme(space, largest=True)]
        archs += [space.sample(random.Random(f"calibrate-{name}-{i}")) for i in range(RANDOM_PER_SPACE)]
    return list({format_arch(a): a for a in archs}.values())


def extreme(space: SearchSpace, *, largest: bool) -> ArchSpec:
    """The slowest (``largest``) or fastest point of ``space``: widest or thinnest choices, kernel, SE and
    h-swish or not, and the smallest or largest stride (every combination of a space builds)."""
    pick = max if largest else min
    blocks = [BlockSpec(pick(bc.kernel), pick(bc.expand), pick(bc.out), pick(bc.se),
                        ("HS" if "HS" in bc.act else bc.act[0]) if largest else ("RE" if "RE" in bc.act else bc.act[0]),
                        (min if largest else max)(bc.stride)) for bc in space.blocks]
    return ArchSpec(space.stem, tuple(blocks), last_conv_width(space.last_conv, blocks[-1].out), space.head,
                    space.dropout)


def set_id(archs: Sequence[ArchSpec]) -> str:
    """A short id of a calibration set (order-free), stored with the fit it was used for."""
    text = "\n".join(sorted(format_arch(a) for a in archs))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def fit(sums: Sequence[float], measured: Sequence[float]) -> tuple[float, float]:
    """(scale, overhead) minimising sum(((scale * s + overhead) - m) / m)^2 with both >= 0.

    Dividing each row by m turns relative error into a linear least-squares problem; ``nnls`` solves it
    exactly under the sign constraints. One network, sums that do not spread, or timings that fall as
    sums grow (noise on networks of nearly one size: the fit would be a constant, scale 0) give a pure
    ratio, fitted on the same relative error.
    """
    import numpy as np
    from scipy.optimize import nnls

    s, m = np.asarray(sums, float), np.asarray(measured, float)
    r = s / m
    if len(s) >= 2 and np.ptp(s) > 1e-9 * s.mean():
        (scale, overhead), _ = nnls(np.column_stack([r, 1.0 / m]), np.ones_like(m))
        if scale > 0:
            return float(scale), float(overhead)
    return float(r.sum() / (r * r).sum()), 0.0
