"""Search figures: one study's front (``draw_pareto``), and every study beside the NetAdapt runs
(``draw_overview``), grouped by accuracy protocol: results measured differently get panels of their own."""
from __future__ import annotations

from dataclasses import dataclass, field

from space import reference_title

from .canvas import figure, png


@dataclass(frozen=True)
class ParetoInfo:
    title: str
    points: tuple[tuple[int, float, float, int], ...]  # (number, top1, latency_ms, macs), complete + feasible
    on_front: tuple[bool, ...]  # 3-D (top1, latency, MACs) non-dominated
    front_latency: tuple[tuple[float, float], ...]  # (latency_ms, top1) staircase, fastest first
    front_macs: tuple[tuple[int, float], ...]  # (macs, top1) staircase, smallest first
    reference: tuple[str, float, float, int] | None  # (name, top1, latency_ms, macs)
    infeasible: tuple[tuple[float, float, int], ...] = ()  # (top1, latency_ms, macs) breaking a constraint
    hypervolume: tuple[tuple[int, float], ...] = ()  # (trial number, normalised hypervolume)
    companions: tuple[tuple[str, float, float, int], ...] = ()  # other references: (name, top1, latency_ms, macs)
    front_test: tuple[tuple[float, int, float], ...] = ()  # front members' (latency_ms, macs, test top-1): report only


@dataclass(frozen=True)
class Trajectory:
    label: str
    latency_ms: tuple[float, ...]
    macs: tuple[int, ...]
    top1: tuple[float, ...]


@dataclass(frozen=True)
class OverviewGroup:
    """Results that share one accuracy protocol, so their top-1 figures compare on one axis."""

    protocol: str
    fronts: tuple[tuple[str, ParetoInfo], ...] = ()
    trajectories: tuple[Trajectory, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class OverviewInfo:
    groups: tuple[OverviewGroup, ...] = ()

    @property
    def fronts(self) -> tuple[tuple[str, ParetoInfo], ...]:
        return tuple(f for g in self.groups for f in g.fronts)

    @property
    def trajectories(self) -> tuple[Trajectory, ...]:
        return tuple(t for g in self.groups for t in g.trajectories)


def _front_axes(ax, info: ParetoInfo, which: int, color=None, label: str | None = None, all_points=True):
    """One panel: top-1 against latency (which=2) or MACs (which=3)."""
    scale = 1e6 if which == 3 else 1.0
    xs = [p[which] / scale for p in info.points]
    ys = [p[1] * 100 for p in info.points]
    if all_points and xs:
        front = info.on_front
        ax.scatter([x for x, f in zip(xs, front) if not f], [y for y, f in zip(ys, front) if not f],
                   s=14, color=color or "0.6", alpha=0.45, label=None if label else "trials")
        ax.scatter([x for x, f in zip(xs, front) if f], [y for y, f in zip(ys, front) if f],
                   s=26, color=color or "tab:blue", label=None if label else "3-D Pareto front")
    if info.infeasible and all_points:
        ax.scatter([p[which - 1] / scale for p in info.infeasible], [p[0] * 100 for p in info.infeasible],
                   s=14, marker="x", color="tab:red", alpha=0.5, label=None if label else "breaks a constraint")
    stairs = info.front_latency if which == 2 else info.front_macs
    if stairs:
        ax.step([x / scale for x, _ in stairs], [y * 100 for _, y in stairs], where="post",
                color=color or "tab:blue", lw=1.4, label=label or "front")
    if info.front_test and all_points:
        ax.scatter([(lat if which == 2 else macs) / scale for lat, macs, _ in info.front_test],
                   [t * 100 for _, _, t in info.front_test], s=26, facecolors="none", edgecolors=color or "tab:blue",
                   label=None if label else "front, test top-1")
    if info.reference:
        name, t, lat, macs = info.reference
        ax.scatter([(lat if which == 2 else macs) / scale], [t * 100], marker="*", s=180, color=color or "tab:orange",
                   edgecolor="black", zorder=5, label=None if label else f"reference {name}")
    for name, t, lat, macs in info.companions:
        x = (lat if which == 2 else macs) / scale
        ax.scatter([x], [t * 100], marker="D", s=60, color=color or "tab:purple", edgecolor="black", zorder=5,
                   label=None if label else f"{reference_title(name)} (outside the space)")
        if not label:  # the overview names every reference itself, once
            inward = bool(xs) and x > max(xs)  # right of every trial: the name goes on its left, inside the panel
            ax.annotate(reference_title(name), (x, t * 100), textcoords="offset points", fontsize=8,
                        xytext=(-6, 6) if inward else (6, 6), ha="right" if inward else "left")
    ax.set_xlabel("latency (ms)" if which == 2 else "MACs (M)")
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)


def draw_pareto(info: ParetoInfo) -> bytes:
    """A PNG: top-1 vs latency, top-1 vs MACs (front drawn, reference starred, other references as
    named diamonds), hypervolume history."""
    plt, fig, axes = figure(3)
    _front_axes(axes[0], info, 2)
    _front_axes(axes[1], info, 3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, loc="best")  # the other reference may sit in any corner
    if info.hypervolume:
        axes[2].plot([n for n, _ in info.hypervolume], [h for _, h in info.hypervolume], marker=".")
    axes[2].set_xlabel("trial")
    axes[2].set_ylabel("hypervolume (normalised)")
    axes[2].grid(alpha=0.3)
    fig.suptitle(info.title)
    return png(plt, fig)


def draw_overview(info: OverviewInfo) -> bytes:
    """One row of (top-1 vs latency, top-1 vs MACs) panels per accuracy protocol, the protocol above it."""
    n = max(1, len(info.groups))
    plt, fig, rows = figure(2, nrows=n)
    rows = rows if n > 1 else [rows]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes, group in zip(rows, info.groups):
        _overview_row(axes, group, colors)
    fig.suptitle("bneck: Pareto fronts (stars: each space's reference; diamonds: the other reference)")
    return png(plt, fig)


def _overview_row(axes, info: OverviewGroup, colors) -> None:
    for i, (label, front) in enumerate(info.fronts):
        for ax, which in ((axes[0], 2), (axes[1], 3)):
            _front_axes(ax, front, which, color=colors[i % len(colors)], label=label)
    # Stars: a space's own reference; diamonds: a reference evaluated beside a study of another space.
    refs = {("*", *f.reference) for _, f in info.fronts if f.reference}
    refs |= {("D", *c) for _, f in info.fronts for c in f.companions}
    for marker, name, t, lat, macs in sorted(refs):
        for ax, x in ((axes[0], lat), (axes[1], macs / 1e6)):
            ax.scatter([x], [t * 100], marker=marker, s=200 if marker == "*" else 80, color="gold",
                       edgecolor="black", zorder=6)
            ax.annotate(reference_title(name), (x, t * 100), textcoords="offset points", xytext=(5, -12), fontsize=8)
    for j, tr in enumerate(info.trajectories):
        c = colors[(len(info.fronts) + j) % len(colors)]
        axes[0].plot(tr.latency_ms, [t * 100 for t in tr.top1], "--o", ms=3, color=c, label=f"NetAdapt {tr.label}")
        if any(tr.macs):
            axes[1].plot([m / 1e6 for m in tr.macs], [t * 100 for t in tr.top1], "--o", ms=3, color=c)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.set_title(info.protocol, fontsize=8)


