"""MACs of an ``ArchSpec`` counted by fvcore on the traced network, with bneck's own op table.

The check on ``measure.count_macs`` (a closed form on the spec, microseconds instead of the second a
trace takes): same convention (see ``measure.macs``), and the tests require the two to agree exactly.
Every traced op is either counted or ignored by name, so ``unhandled_ops`` says when a new layer
would go uncounted.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from functools import lru_cache

import torch

from space import ArchSpec, build_model

from .macs import check_macs_args

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


@lru_cache(maxsize=256)
def traced_macs(arch: ArchSpec, input_size: int = 224) -> int:
    """Multiply-adds of one forward pass of ``build_model(arch)`` (1000 classes) as fvcore traces them."""
    check_macs_args(arch, input_size)
    return int(_run(_analysis(arch, input_size), "total"))


def unhandled_ops(arch: ArchSpec, input_size: int = 224) -> Counter:
    """Ops traced in ``arch`` that the table neither counts nor ignores (empty when all is well)."""
    check_macs_args(arch, input_size)
    return Counter(_run(_analysis(arch, input_size), "unsupported"))
