"""What an architecture is: frozen, hashable data, validated on construction.

An ``ArchSpec`` is a stem, a tuple of inverted-residual ``BlockSpec``s, a last 1x1 conv and a
classifier head -- the MobileNetV3 skeleton. A block's input width is the previous block's output
(the stem for the first block), so it is derived, never stored. As in torchvision, a block has an
expansion (1x1) conv exactly when ``expand != in_channels``, and a residual add exactly when
``stride == 1 and in_channels == out``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import UserError

ACTIVATIONS = ("RE", "HS")  # ReLU, hard-swish: the MobileNetV3 paper's names


class ArchError(UserError):
    """An architecture (or a search-space entry) that cannot be built; the message names the field."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going 10% below it.

    Same rule as torchvision's ``_make_divisible`` (needed for exact parameter counts).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def se_width(expand: int) -> int:
    """Squeeze width of the SE module of a block with ``expand`` channels (torchvision's rule)."""
    return make_divisible(expand // 4, 8)


@dataclass(frozen=True)
class BlockSpec:
    kernel: int  # depthwise kernel size
    expand: int  # expansion (depthwise) channels; == input channels means no expansion conv
    out: int  # output (projection) channels
    se: bool = False  # squeeze-and-excite on the expanded features
    act: str = "RE"  # "RE" (ReLU) or "HS" (hard-swish)
    stride: int = 1

    def has_expand(self, in_channels: int) -> bool:
        return self.expand != in_channels

    def has_residual(self, in_channels: int) -> bool:
        return self.stride == 1 and in_channels == self.out


@dataclass(frozen=True)
class ArchSpec:
    stem: int  # output channels of the 3x3 stride-2 stem conv (hard-swish)
    blocks: tuple[BlockSpec, ...]
    last_conv: int  # channels of the final 1x1 conv (6x the last block's output in MobileNetV3)
    head: int  # hidden width of the classifier (torchvision's "last_channel")
    dropout: float = 0.2
    name: str | None = field(default=None, compare=False)  # display only; not part of identity

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        validate(self)

    def in_channels(self) -> list[int]:
        """Input width of every block, in order."""
        widths = [self.stem] + [b.out for b in self.blocks]
        return widths[:-1]

    def with_blocks(self, blocks, **changes) -> ArchSpec:
        from dataclasses import replace

        return replace(self, blocks=tuple(blocks), name=None, **changes)


def _positive_int(value, where: str, field_name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArchError(f"{where}: {field_name} must be a positive integer, got {value!r}")


def validate(arch: ArchSpec) -> None:
    """Raise ``ArchError`` naming the first bad field; return None when ``arch`` can be built."""
    _positive_int(arch.stem, "stem", "channels")
    _positive_int(arch.last_conv, "last_conv", "channels")
    _positive_int(arch.head, "head", "channels")
    if not isinstance(arch.dropout, (int, float)) or not 0.0 <= arch.dropout < 1.0:
        raise ArchError(f"head: dropout must be in [0, 1), got {arch.dropout!r}")
    if not arch.blocks:
        raise ArchError("blocks: an architecture needs at least one block")
    in_ch = arch.stem
    for i, b in enumerate(arch.blocks):
        where = f"block {i}"
        if not isinstance(b, BlockSpec):
            raise ArchError(f"{where}: expected a BlockSpec, got {type(b).__name__}")
        if isinstance(b.kernel, bool) or not isinstance(b.kernel, int) or b.kernel < 3 or b.kernel % 2 == 0:
            raise ArchError(f"{where}: kernel must be an odd integer >= 3, got {b.kernel!r}")
        _positive_int(b.expand, where, "expand")
        _positive_int(b.out, where, "out")
        if b.stride not in (1, 2) or isinstance(b.stride, bool):
            raise ArchError(f"{where}: stride must be 1 or 2, got {b.stride!r}")
        if b.act not in ACTIVATIONS:
            raise ArchError(f"{where}: act must be one of {', '.join(ACTIVATIONS)}, got {b.act!r}")
        if not isinstance(b.se, bool):
            raise ArchError(f"{where}: se must be true or false, got {b.se!r}")
        if b.has_expand(in_ch) and b.expand < b.out:
            raise ArchError(
                f"{where}: expand ({b.expand}) must be >= out ({b.out}) when the block expands "
                f"(input {in_ch}); use expand={in_ch} for no expansion conv"
            )
        in_ch = b.out
