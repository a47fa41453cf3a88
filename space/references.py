"""The two reference networks as literal tables, and torchvision's width-multiplier rule."""
from __future__ import annotations

from .skeleton import SIX_X, follows_6x, last_conv_width
from .spec import ArchSpec, BlockSpec, make_divisible

B = BlockSpec

# MobileNetV3-Large (Howard et al. 2019, table 1); kernel, expand, out, SE, act, stride.
V3_LARGE = ArchSpec(
    stem=16,
    blocks=(
        B(3, 16, 16, False, "RE", 1),  # 112x112
        B(3, 64, 24, False, "RE", 2),  # -> 56x56
        B(3, 72, 24, False, "RE", 1),
        B(5, 72, 40, True, "RE", 2),  # -> 28x28
        B(5, 120, 40, True, "RE", 1),
        B(5, 120, 40, True, "RE", 1),
        B(3, 240, 80, False, "HS", 2),  # -> 14x14
        B(3, 200, 80, False, "HS", 1),
        B(3, 184, 80, False, "HS", 1),
        B(3, 184, 80, False, "HS", 1),
        B(3, 480, 112, True, "HS", 1),
        B(3, 672, 112, True, "HS", 1),
        B(5, 672, 160, True, "HS", 2),  # -> 7x7
        B(5, 960, 160, True, "HS", 1),
        B(5, 960, 160, True, "HS", 1),
    ),
    last_conv=960,
    head=1280,
    dropout=0.2,
    name="v3_large",
)

# MobileNetV3-Small (table 2).
V3_SMALL = ArchSpec(
    stem=16,
    blocks=(
        B(3, 16, 16, True, "RE", 2),  # -> 56x56
        B(3, 72, 24, False, "RE", 2),  # -> 28x28
        B(3, 88, 24, False, "RE", 1),
        B(5, 96, 40, True, "HS", 2),  # -> 14x14
        B(5, 240, 40, True, "HS", 1),
        B(5, 240, 40, True, "HS", 1),
        B(5, 120, 48, True, "HS", 1),
        B(5, 144, 48, True, "HS", 1),
        B(5, 288, 96, True, "HS", 2),  # -> 7x7
        B(5, 576, 96, True, "HS", 1),
        B(5, 576, 96, True, "HS", 1),
    ),
    last_conv=576,
    head=1024,
    dropout=0.2,
    name="v3_small",
)

REFERENCES = {"v3_large": V3_LARGE, "v3_small": V3_SMALL}
TITLES = {"v3_large": "MobileNetV3-Large", "v3_small": "MobileNetV3-Small"}


def reference_title(name: str) -> str:
    """The published name of a reference (``v3_small`` -> ``MobileNetV3-Small``); others unchanged."""
    return TITLES.get(name, name)


def scale_width(arch: ArchSpec, multiplier: float) -> ArchSpec:
    """Width-multiplier variant, torchvision's rule: every width ``make_divisible(w * m, 8)``.

    The last conv stays 6x the (scaled) last block output when the reference follows that rule,
    and the head is scaled too, as torchvision's ``_mobilenet_v3_conf`` does.
    """
    if multiplier <= 0:
        raise ValueError(f"width multiplier must be > 0, got {multiplier}")

    def adj(c: int) -> int:
        return make_divisible(c * multiplier, 8)

    blocks = tuple(
        BlockSpec(b.kernel, adj(b.expand), adj(b.out), b.se, b.act, b.stride) for b in arch.blocks
    )
    last_conv = last_conv_width(SIX_X, blocks[-1].out) if follows_6x(arch) else adj(arch.last_conv)
    name = f"{arch.name}_x{multiplier:g}" if arch.name else None
    return ArchSpec(adj(arch.stem), blocks, last_conv, adj(arch.head), arch.dropout, name=name)
