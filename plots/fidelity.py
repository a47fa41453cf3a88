"""``search.fidelity``'s figure: one panel per budget, each network's seed-0 top-1 against its seed-1 top-1."""
from __future__ import annotations

from dataclasses import dataclass

from .canvas import figure, png


@dataclass(frozen=True)
class Panel:
    title: str
    names: tuple[str, ...]
    seed0: tuple[float, ...]  # holdout top-1, points
    seed1: tuple[float, ...]
    best: tuple[bool, ...]  # in the best quarter by seed mean


@dataclass(frozen=True)
class FidelityInfo:
    title: str
    panels: tuple[Panel, ...]


def draw_fidelity(info: FidelityInfo) -> bytes:
    n = max(1, len(info.panels))
    plt, fig, axes = figure(n)
    axes = axes if n > 1 else [axes]
    for ax, p in zip(axes, info.panels):
        rest = [i for i, b in enumerate(p.best) if not b]
        top = [i for i, b in enumerate(p.best) if b]
        ax.scatter([p.seed0[i] for i in rest], [p.seed1[i] for i in rest], s=18, color="tab:gray", label="others")
        ax.scatter([p.seed0[i] for i in top], [p.seed1[i] for i in top], s=28, color="tab:red",
                   label="best quarter (seed mean)")
        values = [*p.seed0, *p.seed1]
        if values:
            lo, hi = min(values), max(values)
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.6, alpha=0.5)
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel("holdout top-1, seed 0 (%)")
        ax.set_ylabel("holdout top-1, seed 1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if not info.panels:
        axes[0].text(0.5, 0.5, "no network has two seeds yet", ha="center", va="center")
    fig.suptitle(info.title, fontsize=10)
    return png(plt, fig)
