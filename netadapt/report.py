"""What a run leaves for people: the trajectory plot and the ONNX export of the final network."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from space import reference_title


@dataclass(frozen=True)
class TrajectoryInfo:
    """Everything ``draw_trajectory`` shows, computed first so tests can compare it (no pixels)."""

    title: str
    latency_ms: tuple[float, ...]  # kept network per iteration (after its short finetune)
    top1: tuple[float, ...]
    final: tuple[float, float] | None  # (latency_ms, top1) after the long finetune
    baseline: tuple[float, float, float] | None  # (latency_ms, top1, multiplier)
    references: tuple[tuple[str, float], ...] = ()  # (name, latency_ms): costed with the run's model, not trained


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
    )


def draw_trajectory(info: TrajectoryInfo) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.plot(info.latency_ms, info.top1, "o-", color="tab:blue", ms=4, label="NetAdapt iterations (short finetune)")
    if info.latency_ms:
        ax.annotate("start", (info.latency_ms[0], info.top1[0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if info.final:
        ax.plot(*info.final, "*", color="tab:blue", ms=13, label="NetAdapt final (long finetune)")
    if info.baseline:
        lat, acc, m = info.baseline
        ax.plot(lat, acc, "s", color="tab:red", ms=8, label=f"width multiplier {m:.3g}")
    for i, (name, lat) in enumerate(info.references):  # by cost only: NetAdapt does not train them
        ax.axvline(lat, ls="--", lw=1, color=("tab:green", "tab:purple")[i % 2],
                   label=f"{reference_title(name)} {lat:.3g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("top-1 (validation)")
    ax.set_title(info.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def onnx_bytes(model: nn.Module, input_size: int) -> bytes:
    """ONNX of ``model`` (batch dimension dynamic) by ``measure``'s exporter, checked against torch under
    onnxruntime; a failed export or a mismatch is a ``MeasureError`` naming the network."""
    import numpy as np
    import onnxruntime as ort

    from measure.latency import MeasureError, export_onnx, network_name

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
