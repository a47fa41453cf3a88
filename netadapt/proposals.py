"""NetAdapt proposals (MobileNetV3 paper, section 4.2), as pure functions on specs.

Two kinds, each the *smallest* reduction that cuts the resource by at least ``delta``:

- ``expand``: one block's expansion channels (only blocks with an expansion conv; the new width
  stays >= the block's output width and != its input width, so the expansion conv stays);
- ``width``: the shared width of one width group (see ``groups``), applied to every producer, the
  stem if it is a member, and the ``expand`` of every block without an expansion conv that reads it.

Widths move in multiples of 8 (torchvision's divisibility rule). A candidate that would change the
network's structure (drop an expansion conv, create or remove a residual add) is never proposed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from space import ArchError, ArchSpec

from .groups import STEM, WidthGroup, same_structure, width_groups

DIVISOR = 8
Resource = Callable[[ArchSpec], float]


@dataclass(frozen=True)
class Proposal:
    kind: str  # "expand" | "width"
    blocks: tuple[int, ...]  # the block whose expansion shrinks, or the group's nodes (-1 = stem)
    old: int  # channels before
    new: int  # channels after
    arch: ArchSpec
    cost: float  # resource of ``arch``

    @property
    def label(self) -> str:
        where = ",".join("stem" if n == STEM else str(n) for n in self.blocks)
        return f"{self.kind}[{where}] {self.old}->{self.new}"


@dataclass
class Proposals:
    made: list[Proposal] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why a block or group gave no proposal


def smaller_multiples(width: int, floor: int) -> Iterator[int]:
    """Multiples of ``DIVISOR`` strictly below ``width`` and >= ``floor``, largest first."""
    w = (width - 1) // DIVISOR * DIVISOR
    floor = max(floor, DIVISOR)
    while w >= floor:
        yield w
        w -= DIVISOR


def with_expand(arch: ArchSpec, block: int, expand: int) -> ArchSpec:
    blocks = list(arch.blocks)
    blocks[block] = replace(blocks[block], expand=expand)
    return arch.with_blocks(blocks)


def with_group_width(arch: ArchSpec, group: WidthGroup, width: int) -> ArchSpec:
    nodes = set(group.nodes)
    blocks = []
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        changes = {}
        if i in nodes:
            changes["out"] = width
        if i - 1 in nodes and not b.has_expand(cin):
            changes["expand"] = width  # depthwise runs on the input itself
        blocks.append(replace(b, **changes))
    stem = width if STEM in nodes else arch.stem
    return arch.with_blocks(blocks, stem=stem)


def _valid(arch: ArchSpec, make: Callable[[], ArchSpec]) -> ArchSpec | None:
    try:
        new = make()
    except ArchError:
        return None
    return new if same_structure(arch, new) else None


def _first_cut(arch: ArchSpec, candidates, make, resource: Resource, target: float):
    """The first (largest-width) candidate whose resource is <= target, or None."""
    for w in candidates:
        new = _valid(arch, lambda w=w: make(w))
        if new is None:
            continue
        cost = resource(new)
        if cost <= target:
            return w, new, cost
    return None


def propose(arch: ArchSpec, resource: Resource, delta: float, current: float | None = None) -> Proposals:
    """All proposals for ``arch`` that cut ``resource`` by at least ``delta``.

    ``resource`` maps an arch to its cost (latency in ms, or MACs); ``delta > 0``. ``current`` is
    ``arch``'s cost when already known (a measured latency is not re-measured with fresh noise).
    """
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    target = (resource(arch) if current is None else current) - delta
    out = Proposals()
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        if not b.has_expand(cin):
            continue
        hit = _first_cut(arch, smaller_multiples(b.expand, b.out), lambda w, i=i: with_expand(arch, i, w),
                         resource, target)
        if hit is None:
            out.skipped.append(f"expand[{i}]: no multiple of {DIVISOR} in [{max(b.out, DIVISOR)}, "
                               f"{b.expand}) cuts {delta:.4g}")
        else:
            w, new, cost = hit
            out.made.append(Proposal("expand", (i,), b.expand, w, new, cost))
    for g in width_groups(arch):
        hit = _first_cut(arch, smaller_multiples(g.width, DIVISOR),
                         lambda w, g=g: with_group_width(arch, g, w), resource, target)
        where = ",".join("stem" if n == STEM else str(n) for n in g.nodes)
        if hit is None:
            out.skipped.append(f"width[{where}]: no multiple of {DIVISOR} below {g.width} cuts {delta:.4g}")
        else:
            w, new, cost = hit
            out.made.append(Proposal("width", g.nodes, g.width, w, new, cost))
    return out
