"""What a run leaves for people: the trajectory plot (drawn by ``plots``) and the ONNX export of the final network."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from plots import TrajectoryInfo, draw_trajectory


def trajectory_info(history: list[dict], summary: dict | None, baseline: dict | None, title: str) -> TrajectoryInfo:
    final = (summary or {}).get("final")
    refs = (summary or {}).get("references") or {}
    return TrajectoryInfo(
        title,
        tuple(float(r["latency_ms"]) for r in history),
        tuple(float(r["top1"]) for r in history),
        (float(final["latency_ms"]), float(final["top1"])) if final else None,
        (float(baseline["latency_ms"]), float(baseline["top1"]), float(baseline["multiplier"])) if baseline else None,
        tuple((name, float(r["latency_ms"])) for name, r in sorted(refs.items()) if r.get("latency_ms") is not None),
        final.get("test_top1") if final else None,
        baseline.get("test_top1") if baseline else None,
    )


def onnx_bytes(model: nn.Module, input_size: int) -> bytes:
    """ONNX of ``model`` (batch dimension dynamic), checked against torch under onnxruntime.

    The TorchScript exporter (``dynamo=False``) works offline in torch 2.13 and takes well under a
    second; the dynamo exporter is the fallback should it be removed.
    """
    import numpy as np
    import onnxruntime as ort

    model = model.eval()
    x = torch.randn(2, 3, input_size, input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            data = buf.getvalue()
        except (TypeError, RuntimeError, AttributeError):
            program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},))
            data = program.model_proto.SerializeToString()
        expected = model(x).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
        raise RuntimeError(f"ONNX export differs from torch by {np.abs(got - expected).max():.3g}")
    return data


def write_report(folder: Path, history, summary, baseline, title: str) -> Path:
    from .store import write_atomic

    path = Path(folder) / "trajectory.png"
    write_atomic(path, draw_trajectory(trajectory_info(history, summary, baseline, title)))
    return path
