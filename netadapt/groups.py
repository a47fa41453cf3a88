"""Which channel widths of an ``ArchSpec`` are tied together, as pure functions on the spec.

A *width node* is a tensor width between layers: the stem output (node ``STEM`` = -1) or the output
of block ``i`` (node ``i``). A residual block adds its input to its output, so its input node and
output node must keep one width: nodes joined by residual blocks form a *width group* (always a
contiguous run). Shrinking a group's width changes every producer of it (stem conv or project convs)
and every reader (expand convs, the depthwise of blocks without an expand conv, the last conv).

A block without an expansion conv runs its depthwise directly on its input, so its ``expand`` is
tied to its input width and moves with that group.
"""
from __future__ import annotations

from dataclasses import dataclass

from space import ArchSpec

STEM = -1


@dataclass(frozen=True)
class WidthGroup:
    width: int
    nodes: tuple[int, ...]  # STEM and/or block indices whose output has this width

    @property
    def residual(self) -> bool:
        return len(self.nodes) > 1

    def readers(self, n_blocks: int) -> tuple[int, ...]:
        """Blocks whose input is one of this group's nodes (the last conv is read by node n-1)."""
        return tuple(n + 1 for n in self.nodes if n + 1 < n_blocks)


def node_width(arch: ArchSpec, node: int) -> int:
    return arch.stem if node == STEM else arch.blocks[node].out


def width_groups(arch: ArchSpec) -> list[WidthGroup]:
    """Every width group, in network order; each node belongs to exactly one."""
    groups: list[list[int]] = [[STEM]]
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        if b.has_residual(cin):
            groups[-1].append(i)
        else:
            groups.append([i])
    return [WidthGroup(node_width(arch, g[0]), tuple(g)) for g in groups]


def group_index(arch: ArchSpec) -> dict[int, int]:
    """Node -> index of its group in ``width_groups(arch)``."""
    return {n: gi for gi, g in enumerate(width_groups(arch)) for n in g.nodes}


def structure(arch: ArchSpec) -> tuple:
    """What must not change when only widths shrink: layer kinds, residual adds, SE, strides."""
    return tuple(
        (b.kernel, b.stride, b.se, b.act, b.has_expand(cin), b.has_residual(cin))
        for cin, b in zip(arch.in_channels(), arch.blocks)
    )


def same_structure(a: ArchSpec, b: ArchSpec) -> bool:
    return len(a.blocks) == len(b.blocks) and structure(a) == structure(b)
