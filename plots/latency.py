"""``measure.lut validate``'s figure: predicted against measured latency, with the ±5% and ±10% bands."""
from __future__ import annotations

from dataclasses import dataclass

from .canvas import figure, png


@dataclass(frozen=True)
class ValidationInfo:
    title: str
    measured_ms: tuple[float, ...]  # at the table's reference speed
    predicted_ms: tuple[float, ...]


def draw_validation(info: ValidationInfo) -> bytes:
    plt, fig, ax = figure(size=(4.5, 4.5))
    x, y = list(info.measured_ms), list(info.predicted_ms)
    lo, hi = min(x + y) * 0.9, max(x + y) * 1.1
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="exact")
    for tol, style in ((0.05, "--"), (0.10, ":")):
        ax.plot([lo, hi], [lo * (1 + tol), hi * (1 + tol)], "k" + style, lw=0.6)
        ax.plot([lo, hi], [lo * (1 - tol), hi * (1 - tol)], "k" + style, lw=0.6, label=f"±{tol:.0%}")
    ax.scatter(x, y, s=12)
    ax.set(xlabel="measured (ms at the table's reference speed)", ylabel="predicted (ms)", title=info.title,
           xlim=(lo, hi), ylim=(lo, hi))
    ax.legend(loc="upper left", fontsize=8)
    return png(plt, fig, dpi=120)
