"""What a run leaves for people: the trajectory plot (drawn by ``plots``) and the ONNX export of the final network."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from plots import TrajectoryInfo, draw_trajectory


def trajectory_info(history: list[dict], summary: dict | None, baseline: dict | None, title: str) -> TrajectoryInfo:
    final = (summary or {}).get("final")
    refs = (summary or {}).get("references") or {}
    m = (summary or {}).get("measured") or {}
    return TrajectoryInfo(
        title,
        tuple(float(r["latency_ms"]) for r in history),
        tuple(float(r["top1"]) for r in history),
        (float(final["latency_ms"]), float(final["top1"])) if final else None,
        (float(baseline["latency_ms"]), float(baseline["top1"]), float(baseline["multiplier"])) if baseline else None,
        tuple((name, float(r["latency_ms"])) for name, r in sorted(refs.items()) if r.get("latency_ms") is not None),
        final.get("test_top1") if final else None,
        baseline.get("test_top1") if baseline else None,
        tuple((name, float(m[name]["measured_ms"]), float(row["top1"]))
              for name, row in (("final", final), ("baseline", baseline)) if row and name in m),
    )


def onnx_bytes(model: nn.Module, input_size: int) -> bytes:
    """ONNX of ``model`` (batch dimension dynamic) by ``measure``'s exporter, checked against torch under
    onnxruntime; a failed export or a mismatch is a ``MeasureError`` naming the network."""
    import numpy as np
    import onnxruntime as ort

    from measure.latency import MeasureError
    from measure.onnx import export_onnx, network_name

    model = model.eval()
    x = torch.randn(2, 3, input_size, input_size)
    data = export_onnx(model, x, dynamic_batch=True, output_name="logits")
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
        raise MeasureError(f"the ONNX export of {network_name(model)} differs from torch by "
                           f"{np.abs(got - expected).max():.3g}")
    return data


def write_report(folder: Path, history, summary, baseline, title: str) -> Path:
    from .store import write_atomic

    path = Path(folder) / "trajectory.png"
    write_atomic(path, draw_trajectory(trajectory_info(history, summary, baseline, title)))
    return path
