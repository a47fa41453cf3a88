"""What a latency table times: the stem, each block and the head of a network, whole networks
(calibration) and the runtime's per-call cost at each entry's input shape (an empty graph), each keyed
by everything its latency depends on."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from space import ArchSpec, BlockSpec, build_model, format_arch
from space.model import Head, InvertedResidual, stem_layer
from space.skeleton import feature_sizes, last_conv_width, side_at


@dataclass(frozen=True)
class Entry:
    key: str
    in_channels: int
    side: int  # input resolution (square)
    build: Callable[[], nn.Module]

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, self.side, self.side)


def stem_entry(stem: int, input_size: int) -> Entry:
    return Entry(f"stem_r{input_size}_c{stem}", 3, input_size, lambda: stem_layer(stem))


def block_entry(cin: int, side: int, b: BlockSpec) -> Entry:
    key = f"block_r{side}_i{cin}_k{b.kernel}_e{b.expand}_o{b.out}_s{b.stride}_se{int(b.se)}_{b.act}"
    return Entry(key, cin, side, lambda: InvertedResidual(cin, b))


def head_entry(cin: int, side: int, last_conv: int, head: int, num_classes: int = 1000) -> Entry:
    return Entry(f"head_r{side}_i{cin}_l{last_conv}_h{head}_n{num_classes}", cin, side,
                 lambda: Head(cin, last_conv, head, num_classes))


def call_entry(cin: int, side: int) -> Entry:
    """An empty graph (input returned as it is) on a ``(cin, side, side)`` input: what one call of the runtime
    costs at that shape (dispatch, input binding, output copy) with no work inside (``measure.calibration``)."""
    return Entry(f"call_r{side}_i{cin}", cin, side, nn.Identity)


def call_entries(entries: list[Entry]) -> list[Entry]:
    """The empty graph at the input shape of each of ``entries`` (one per entry, in order)."""
    return [call_entry(e.in_channels, e.side) for e in entries]


NETWORK = "net_"  # the key prefix of a whole network


def network_entry(arch: ArchSpec, input_size: int) -> Entry:
    """The whole network, timed end to end (calibration networks are kept in the table this way)."""
    return Entry(f"{NETWORK}r{input_size} {format_arch(arch)}", 3, input_size, lambda: build_model(arch))


def is_network(key: str) -> bool:
    """Whether ``key`` is a whole network's: those are timed paired with the probe (``measure.table``)."""
    return key.startswith(NETWORK)


def arch_entries(arch: ArchSpec, input_size: int) -> list[Entry]:
    """Stem, every block and the head of ``arch``, in order."""
    sides = feature_sizes(arch, input_size)
    blocks = [block_entry(cin, side, b) for cin, side, b in zip(arch.in_channels(), sides, arch.blocks)]
    return [stem_entry(arch.stem, input_size), *blocks,
            head_entry(arch.blocks[-1].out, sides[-1], arch.last_conv, arch.head)]


def space_entries(space, input_size: int) -> list[Entry]:
    """Every entry some point of ``space`` (a ``SearchSpace``) contains, stem and heads included."""
    entries = {e.key: e for e in [stem_entry(space.stem, input_size)]}
    last_outs: set[tuple[int, int]] = set()
    n = len(space.blocks)
    for i, cin, stride, b in space.reachable_blocks():
        e = block_entry(cin, side_at(input_size, stride), b)
        entries.setdefault(e.key, e)
        if i == n - 1:
            last_outs.add((b.out, stride * b.stride))
    for out, stride in sorted(last_outs):
        e = head_entry(out, side_at(input_size, stride), last_conv_width(space.last_conv, out), space.head)
        entries.setdefault(e.key, e)
    return list(entries.values())
