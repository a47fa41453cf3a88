"""MACs and parameter counts of an ``ArchSpec``: the counts every report and search use.

Convention (one, stated once): a multiply-add is one MAC, and only the multiply-adds of weight layers
count -- convolutions (SE's 1x1 convs included) and linear layers, biases not counted. Batch norm is
folded into the preceding conv at inference, so it costs nothing. Element-wise work (ReLU, hard-swish,
hard-sigmoid, the SE gate's multiply, residual adds), pooling, flatten and dropout are ignored
deliberately: they are memory-bound and a few percent of the total at most. This is the MobileNetV3
paper's "MAdds" and gives torchvision's recorded ``_ops`` (0.217 G Large, 0.057 G Small).

MACs are a closed form on the spec (``space.skeleton``'s feature-map sizes): a NetAdapt proposal scan
costs hundreds of networks and tracing one takes about a second, the closed form microseconds. The
tests check it against fvcore's count of the traced network (``measure.traced``), exactly.
"""
from __future__ import annotations

from functools import lru_cache

from space import ArchSpec, se_width
from space.skeleton import STEM_KERNEL, feature_sizes


@lru_cache(maxsize=65536)
def count_macs(arch: ArchSpec, input_size: int = 224, num_classes: int = 1000) -> int:
    """Multiply-adds of one forward pass of ``arch`` on a ``input_size``-pixel square image, batch 1.

    Counts conv and linear multiply-adds only (1 multiply-add = 1; batch norm folded, so free; SE
    gate multiply, activations, residual adds, pooling and bias adds not counted). V3_LARGE at 224:
    216,589,760; V3_SMALL: 56,510,400.
    """
    check_macs_args(arch, input_size)
    sides = feature_sizes(arch, input_size)
    macs = 3 * arch.stem * STEM_KERNEL * STEM_KERNEL * sides[0] ** 2
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        side_in, side_out = sides[i], sides[i + 1]
        if b.has_expand(cin):
            macs += cin * b.expand * side_in ** 2
        macs += b.expand * b.kernel * b.kernel * side_out ** 2  # depthwise, strided
        if b.se:
            macs += 2 * b.expand * se_width(b.expand)  # two 1x1 convs on the pooled 1x1 map
        macs += b.expand * b.out * side_out ** 2
    macs += arch.blocks[-1].out * arch.last_conv * sides[-1] ** 2
    return macs + arch.last_conv * arch.head + arch.head * num_classes


@lru_cache(maxsize=65536)
def count_activations(arch: ArchSpec, input_size: int = 224, num_classes: int = 1000) -> int:
    """Elements of the feature maps one forward pass of ``arch`` writes, batch 1: the input and the output of
    every convolution and linear layer (SE's included; activations, the SE gate and residual adds work in
    place or fused at inference, so they are not counted). With the weights, what a network's pass touches:
    the latency model's footprint (``measure.calibration``). V3_LARGE at 224: 4,557,696; V3_SMALL: 1,568,208.
    """
    check_macs_args(arch, input_size)
    sides = feature_sizes(arch, input_size)
    n = 3 * input_size ** 2 + arch.stem * sides[0] ** 2
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        side_in, side_out = sides[i], sides[i + 1]
        if b.has_expand(cin):
            n += b.expand * side_in ** 2
        n += b.expand * side_out ** 2 + b.out * side_out ** 2
        if b.se:
            n += se_width(b.expand) + b.expand  # the two 1x1 convs on the pooled map
    return n + arch.last_conv * sides[-1] ** 2 + arch.head + num_classes


@lru_cache(maxsize=65536)
def count_params(arch: ArchSpec, num_classes: int = 1000) -> int:
    """Trainable parameters of ``build_model(arch, num_classes)`` (batch-norm affine included), in closed form:
    the latency model reads it for every network it predicts, and building the model (even on the meta
    device) takes tens of ms. The tests check it against the built model's count."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"count_params needs an ArchSpec, got {type(arch).__name__}; use space.parse_arch")
    n = 3 * arch.stem * STEM_KERNEL ** 2 + 2 * arch.stem  # conv, BN
    for cin, b in zip(arch.in_channels(), arch.blocks):
        if b.has_expand(cin):
            n += cin * b.expand + 2 * b.expand
        n += b.expand * b.kernel ** 2 + 2 * b.expand
        if b.se:  # two 1x1 convs with biases
            n += 2 * b.expand * se_width(b.expand) + se_width(b.expand) + b.expand
        n += b.expand * b.out + 2 * b.out
    n += arch.blocks[-1].out * arch.last_conv + 2 * arch.last_conv
    return n + arch.last_conv * arch.head + arch.head + arch.head * num_classes + num_classes


@lru_cache(maxsize=65536)
def entry_weights(arch: ArchSpec, num_classes: int = 1000) -> tuple[int, ...]:
    """Weights of the convolutions and linear layers of each of ``arch``'s latency-table entries, in order (stem,
    every block, head; ``measure.entries``), biases and batch norm left out (folded at inference): what an entry
    reads from cache on every call (the latency model's reload term, ``measure.calibration``)."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"entry_weights needs an ArchSpec, got {type(arch).__name__}; use space.parse_arch")
    blocks = [(cin * b.expand if b.has_expand(cin) else 0) + b.expand * b.kernel ** 2 + b.expand * b.out
              + (2 * b.expand * se_width(b.expand) if b.se else 0) for cin, b in zip(arch.in_channels(), arch.blocks)]
    head = arch.blocks[-1].out * arch.last_conv + arch.last_conv * arch.head + arch.head * num_classes
    return (3 * arch.stem * STEM_KERNEL ** 2, *blocks, head)


def check_macs_args(arch, input_size) -> None:
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"count_macs needs an ArchSpec, got {type(arch).__name__}; use space.parse_arch")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8:
        raise ValueError(f"input_size must be an integer >= 8, got {input_size!r}")
