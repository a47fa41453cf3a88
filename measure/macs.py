"""MACs and parameter counts of an ``ArchSpec``, counted by fvcore with bneck's own op table.

Convention (one, stated once): a multiply-add is one MAC, and only the multiply-adds of weight layers
count -- convolutions (SE's 1x1 convs included) and linear layers, biases not counted. Batch norm is
folded into the preceding conv at inference, so it costs nothing. Element-wise work (ReLU, hard-swish,
hard-sigmoid, the SE gate's multiply, residual adds), pooling, flatten and dropout are ignored
deliberately: they are memory-bound and a few percent of the total at most. This is the MobileNetV3
paper's "MAdds" and gives torchvision's recorded ``_ops`` (0.217 G Large, 0.057 G Small).
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from functools import lru_cache

import torch

from space import ArchSpec, build_model

with warnings.catch_warnings():
    # fvcore (and iopath under it) warn at import on torch 2.13 (torch.jit.script is deprecated);
    # users cannot act on that, so they never see it.
    warnings.simplefilter("ignore")
    from fvcore.nn.jit_analysis import JitModelAnalysis
    from fvcore.nn.jit_handles import get_shape


def _conv(inputs, outputs) -> Counter:
    # aten::_convolution(input, weight, bias, stride, padding, dilation, transposed, ...)
    weight = get_shape(inputs[1])
    out = get_shape(outputs[0])
    # Each output element takes (in_channels / groups) x kh x kw multiply-adds: weight.shape[1:].
    return Counter({"conv": math.prod(out) * math.prod(weight[1:])})


def _linear(inputs, outputs) -> Counter:
    # aten::linear(input, weight[out, in], bias)
    x, weight = get_shape(inputs[0]), get_shape(inputs[1])
    return Counter({"linear": math.prod(x) * weight[0]})


def _addmm(inputs, outputs) -> Counter:
    # aten::addmm(bias, a[n, k], b[k, m]): the bias add is not a multiply-add.
    a, b = get_shape(inputs[1]), get_shape(inputs[2])
    return Counter({"linear": a[0] * a[1] * b[1]})


def _matmul(inputs, outputs) -> Counter:
    a, out = get_shape(inputs[0]), get_shape(outputs[0])
    return Counter({"matmul": math.prod(out) * a[-1]})


COUNTED = {
    "aten::_convolution": _conv,
    "aten::conv2d": _conv,
    "aten::convolution": _conv,
    "aten::linear": _linear,
    "aten::addmm": _addmm,
    "aten::matmul": _matmul,
    "aten::mm": _matmul,
}
# Ops of our networks that cost no MACs under the convention above (explicitly, so nothing is
# "unsupported"): folded batch norm, activations, SE gate multiply, residual add, pooling, reshapes.
IGNORED = (
    "aten::batch_norm", "aten::relu", "aten::relu_", "aten::hardswish", "aten::hardswish_",
    "aten::hardsigmoid", "aten::hardsigmoid_", "aten::mul", "aten::mul_", "aten::add", "aten::add_",
    "aten::adaptive_avg_pool2d", "aten::mean", "aten::dropout", "aten::dropout_", "aten::flatten",
    "aten::view", "aten::reshape", "aten::size",
)


def _analysis(arch: ArchSpec, input_size: int) -> JitModelAnalysis:
    model = build_model(arch).eval()
    x = torch.zeros(1, 3, input_size, input_size)
    analysis = JitModelAnalysis(model, (x,))
    analysis.set_op_handle(**COUNTED)
    analysis.set_op_handle(*[a for name in IGNORED for a in (name, None)])
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def _run(analysis: JitModelAnalysis, what: str):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit.trace deprecation/tracer warnings
        total = analysis.total()
        return total if what == "total" else analysis.unsupported_ops()


@lru_cache(maxsize=4096)
def count_macs(arch: ArchSpec, input_size: int = 224) -> int:
    """Multiply-adds of one forward pass of ``arch`` on a ``input_size``-pixel square image, batch 1.

    Counts conv and linear multiply-adds only (1 multiply-add = 1; batch norm folded, so free; SE
    gate multiply, activations, residual adds, pooling and bias adds not counted). V3_LARGE at 224:
    216,589,760; V3_SMALL: 56,510,400.
    """
    _check(arch, input_size)
    return int(_run(_analysis(arch, input_size), "total"))


def unhandled_ops(arch: ArchSpec, input_size: int = 224) -> Counter:
    """Ops traced in ``arch`` that the table neither counts nor ignores (empty when all is well)."""
    _check(arch, input_size)
    return Counter(_run(_analysis(arch, input_size), "unsupported"))


@lru_cache(maxsize=4096)
def count_params(arch: ArchSpec, num_classes: int = 1000) -> int:
    """Trainable parameters of ``build_model(arch, num_classes)`` (batch-norm affine included)."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"count_params needs an ArchSpec, got {type(arch).__name__}; use space.parse_arch")
    with torch.device("meta"):  # shapes only: no memory, no weight initialisation cost
        model = build_model(arch, num_classes)
    return sum(p.numel() for p in model.parameters())


def _check(arch, input_size) -> None:
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"count_macs needs an ArchSpec, got {type(arch).__name__}; use space.parse_arch")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8:
        raise ValueError(f"input_size must be an integer >= 8, got {input_size!r}")
