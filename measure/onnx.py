"""ONNX: the one exporter (latency tables, ``measured`` latency, NetAdapt's final network) and the
onnxruntime backend."""
from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from space import ArchSpec, format_arch

from .errors import MeasureError


def export_onnx(module: nn.Module, x: torch.Tensor, *, name: str | None = None, dynamic_batch: bool = False,
                output_name: str = "output") -> bytes:
    """ONNX bytes of ``module`` traced on ``x``: the one exporter (latency measurement, NetAdapt's final network).

    The TorchScript exporter (``dynamo=False``) takes ~0.1-1 s per network here against ~20 s for
    the dynamo exporter, and its graphs run as fast under onnxruntime; it is deprecated in torch 2.13
    (warnings silenced). A failure is a ``MeasureError`` naming the network (``name``, else the arch
    string of a ``space.build_model`` network) and the cause: there is no fallback exporter.
    """
    buf = io.BytesIO()
    axes = {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=17, do_constant_folding=True,
                              input_names=["input"], output_names=[output_name], dynamic_axes=axes)
        except Exception as e:  # noqa: BLE001 -- whatever the exporter raises, the user gets one line
            cause = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise MeasureError(f"cannot export {network_name(module, name)} to ONNX: {type(e).__name__}"
                               f"{': ' + cause if cause else ''}") from e
    return buf.getvalue()


def network_name(module: nn.Module, name: str | None = None) -> str:
    """How an error names what was exported: ``name``, the arch string of a bneck network, or the class."""
    if name:
        return name
    arch = getattr(module, "arch", None)
    if isinstance(arch, ArchSpec):
        return f"network {format_arch(arch)!r}"
    return f"module {type(module).__name__}"


def ort_runner(module: nn.Module, x: torch.Tensor, *, threads: int = 1, channels_last: bool = False,
               name: str | None = None):
    """onnxruntime on the CPU, one intra-op thread pool of ``threads``, all graph optimisations."""
    from .runner import ort_session  # the session a target's runner opens too

    session = ort_session(export_onnx(module, x, name=name), threads)
    name = session.get_inputs()[0].name
    feed = {name: x.numpy()}
    return lambda: session.run(None, feed)
