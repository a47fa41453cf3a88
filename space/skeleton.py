"""The MobileNetV3 skeleton, written once: layer order, module paths, feature-map sizes, the 6x rule.

    stem       3x3 conv, stride 2, BN, hard-swish                       features.0
    block i    [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1    features.{i+1}.block.{k}
    last conv  1x1 conv, BN, hard-swish                                 features.{n+1}
    head       avgpool -> Linear -> hard-swish -> Dropout -> Linear    classifier.0 ... classifier.3

These are torchvision's names, so its ImageNet weights load into the references. Everything here is
plain data on an ``ArchSpec`` (no torch): ``space.model`` builds the modules in this order, the
latency table sizes its entries with ``feature_sizes``, NetAdapt's weight surgery finds layers with
``module_paths``, and search spaces and width multipliers apply ``last_conv_width``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .spec import ArchSpec, BlockSpec

STEM_KERNEL, STEM_STRIDE = 3, 2
SIX_X = "6x"  # a space's last_conv given as a rule: six times the last block's output (MobileNetV3)
HIDDEN, LOGITS = "classifier.0", "classifier.3"  # the classifier's two linear layers


# -- widths ----------------------------------------------------------------------------------------
def last_conv_width(rule: int | str, last_out: int) -> int:
    """Channels of the last 1x1 conv: ``6 * last_out`` when ``rule`` is ``"6x"``, else ``rule`` itself."""
    return 6 * last_out if rule == SIX_X else rule


def follows_6x(arch: ArchSpec) -> bool:
    """Whether ``arch``'s last conv is six times its last block's output (both references are)."""
    return arch.last_conv == last_conv_width(SIX_X, arch.blocks[-1].out)


# -- feature-map sizes -------------------------------------------------------------------------------
def side_at(input_size: int, stride: int) -> int:
    """Side of the feature map after convs of total ``stride`` on a square ``input_size`` image.

    Padded convs with stride 2 give ceil(h / 2); repeated ceilings equal one ceiling of the product.
    """
    return math.ceil(input_size / stride)


def feature_sizes(arch: ArchSpec, input_size: int) -> list[int]:
    """The side of the feature map at each block's input, then at the last block's output (the head's
    input): ``len(arch.blocks) + 1`` values, block ``i`` reading ``sides[i]`` and writing ``sides[i + 1]``."""
    stride = STEM_STRIDE
    sides = [side_at(input_size, stride)]
    for b in arch.blocks:
        stride *= b.stride
        sides.append(side_at(input_size, stride))
    return sides


# -- module paths ----------------------------------------------------------------------------------
def block_roles(in_channels: int, spec: BlockSpec) -> tuple[str, ...]:
    """The layers of a block, in order: ``expand`` (when it has one), ``depthwise``, ``se`` (when it has
    one), ``project``. ``space.model.InvertedResidual`` builds ``block.<k>`` from the k-th role."""
    return (("expand",) if spec.has_expand(in_channels) else ()) + ("depthwise",) + \
        (("se",) if spec.se else ()) + ("project",)


def conv_bn(path: str) -> tuple[str, str]:
    """The conv and BN paths of a conv -> BN -> [activation] layer (``space.model.ConvBNAct``) at ``path``."""
    return f"{path}.0", f"{path}.1"


@dataclass(frozen=True)
class BlockPaths:
    """Module paths of one block's layers: (conv, BN) pairs, (fc1, fc2) for SE; None when absent."""

    expand: tuple[str, str] | None
    depthwise: tuple[str, str]
    se: tuple[str, str] | None
    project: tuple[str, str]


@dataclass(frozen=True)
class ModulePaths:
    """Where every weighted layer of ``space.build_model(arch)`` sits (state-dict keys add ``.weight`` etc.)."""

    stem: tuple[str, str]  # (conv, BN)
    blocks: tuple[BlockPaths, ...]
    last_conv: tuple[str, str]  # (conv, BN)
    hidden: str = HIDDEN  # Linear(last_conv, head)
    logits: str = LOGITS  # Linear(head, classes)


def block_path(i: int) -> str:
    """Path of block ``i`` (an ``InvertedResidual``); its layers are ``<path>.block.<k>``."""
    return f"features.{i + 1}"


def module_paths(arch: ArchSpec) -> ModulePaths:
    blocks = []
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        at = {role: f"{block_path(i)}.block.{k}" for k, role in enumerate(block_roles(cin, b))}
        se = at.get("se")
        blocks.append(BlockPaths(
            expand=conv_bn(at["expand"]) if "expand" in at else None,
            depthwise=conv_bn(at["depthwise"]),
            se=(f"{se}.fc1", f"{se}.fc2") if se else None,
            project=conv_bn(at["project"]),
        ))
    return ModulePaths(conv_bn("features.0"), tuple(blocks), conv_bn(block_path(len(arch.blocks))))
