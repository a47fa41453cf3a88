"""Progressive shrinking (Once-for-All, Cai et al. 2020, section 3.2) as a schedule of which choices are open.

The steps are cut into four equal stages. Stage 0 trains the largest point alone; stage 1 opens the
depthwise kernel, stage 2 the expansion width as well, stage 3 every choice (output channels, SE,
activation, stride). Points of a stage take the largest point's value of every choice not yet open, so
the small kernels and narrow widths start from weights the large ones have already learned, instead of
pulling on them from step 0. One learning-rate schedule spans all stages: a supernet with and without
progressive shrinking costs the same steps, so their rankings compare at equal cost.
"""
from __future__ import annotations

import dataclasses

from space import ArchSpec, SearchSpace
from space.searchspace import FIELDS

# The choices open in each stage (cumulative); the last opens every field.
STAGES: tuple[tuple[str, ...], ...] = ((), ("kernel",), ("kernel", "expand"), FIELDS)


def stage(step: int, steps: int) -> int:
    """The stage of ``step`` (0-based) in a run of ``steps``: equal shares, the last one taking the remainder."""
    return min(len(STAGES) - 1, step * len(STAGES) // max(1, steps))


def restrict(arch: ArchSpec, largest: ArchSpec, open_fields: tuple[str, ...], space: SearchSpace) -> ArchSpec:
    """``arch`` with every choice outside ``open_fields`` set to the largest point's."""
    blocks = [dataclasses.replace(big, **{f: getattr(b, f) for f in open_fields})
              for b, big in zip(arch.blocks, largest.blocks)]
    return space._arch(blocks)
