"""NetAdapt against the width multiplier: test top-1 over measured latency, per start network, with intervals."""
from __future__ import annotations

from dataclasses import dataclass

from space import reference_title

from .canvas import figure, png


@dataclass(frozen=True)
class Curve:
    """One method's points over the budgets: means over seeds and the half-widths of their 95% intervals."""

    label: str
    latency_ms: tuple[float, ...]
    latency_half: tuple[float, ...]
    top1: tuple[float, ...]
    top1_half: tuple[float, ...]


@dataclass(frozen=True)
class VersusInfo:
    title: str
    panels: tuple[tuple[str, tuple[Curve, ...]], ...]  # (start network name, its curves)


def draw_versus(info: VersusInfo) -> bytes:
    plt, fig, axes = figure(max(1, len(info.panels)))
    axes = axes if len(info.panels) > 1 else [axes]
    for ax, (start, curves) in zip(axes, info.panels):
        for curve, colour in zip(curves, ("tab:blue", "tab:red", "tab:green")):
            ax.errorbar(curve.latency_ms, curve.top1, xerr=curve.latency_half, yerr=curve.top1_half, fmt="o-",
                        color=colour, ms=4, capsize=3, label=curve.label)
        ax.set_title(f"from {reference_title(start)}", fontsize=10)
        ax.set_xlabel("latency measured end to end (ms)")
        ax.set_ylabel("top-1 (test)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(info.title, fontsize=10)
    return png(plt, fig)
