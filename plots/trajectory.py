"""NetAdapt's figure: the kept network per iteration, the final one, the width-multiplier baseline."""
from __future__ import annotations

from dataclasses import dataclass

from space import reference_title

from .canvas import figure, png


@dataclass(frozen=True)
class TrajectoryInfo:
    """Everything ``draw_trajectory`` shows, computed first so tests can compare it (no pixels)."""

    title: str
    latency_ms: tuple[float, ...]  # kept network per iteration (after its short finetune)
    top1: tuple[float, ...]
    final: tuple[float, float] | None  # (latency_ms, top1) after the long finetune
    baseline: tuple[float, float, float] | None  # (latency_ms, top1, multiplier)
    references: tuple[tuple[str, float], ...] = ()  # (name, latency_ms): costed with the run's model, not trained
    final_test: float | None = None  # report-only test top-1 of the final network and of the baseline
    baseline_test: float | None = None
    measured: tuple[tuple[str, float, float], ...] = ()  # ("final" | "baseline", latency measured end to end, top1)


def draw_trajectory(info: TrajectoryInfo) -> bytes:
    plt, fig, ax = figure(size=(6.4, 4.4))
    ax.plot(info.latency_ms, info.top1, "o-", color="tab:blue", ms=4, label="NetAdapt iterations (short finetune)")
    if info.latency_ms:
        ax.annotate("start", (info.latency_ms[0], info.top1[0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if info.final:
        ax.plot(*info.final, "*", color="tab:blue", ms=13, label="NetAdapt final (long finetune)")
    if info.baseline:
        lat, acc, m = info.baseline
        ax.plot(lat, acc, "s", color="tab:red", ms=8, label=f"width multiplier {m:.3g}")
    # Test top-1 (never selected on) as hollow markers beside the holdout figures.
    if info.final and info.final_test is not None:
        ax.plot(info.final[0], info.final_test, "*", mfc="none", color="tab:blue", ms=13, label="final, test top-1")
    if info.baseline and info.baseline_test is not None:
        ax.plot(info.baseline[0], info.baseline_test, "s", mfc="none", color="tab:red", ms=8,
                label="multiplier, test top-1")
    for name, lat, acc in info.measured:  # the same networks timed end to end (x): the comparison that counts
        ax.plot(lat, acc, "x", color="tab:blue" if name == "final" else "tab:red", ms=9, mew=2,
                label=f"{name}, measured {lat:.3g} ms")
    for i, (name, lat) in enumerate(info.references):  # by cost only: NetAdapt does not train them
        ax.axvline(lat, ls="--", lw=1, color=("tab:green", "tab:purple")[i % 2],
                   label=f"{reference_title(name)} {lat:.3g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("top-1 (holdout)")
    ax.set_title(info.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return png(plt, fig, dpi=120)
