"""Pareto plots. As in ``optuna.visualization``: ``*_info`` computes plain data, ``draw_*`` draws it.

``python -m search.plot [results_dir=results] [studies=[name,...]] [out=PATH]`` draws every study's
front under ``<results_dir>/search/`` (or the ones named, as ``study`` or ``space/study``) in one
figure, with each reference network and the NetAdapt trajectories of ``<results_dir>/netadapt/*``,
and prints where the figure went. A study's own reference (a trial) is starred; the other reference
networks it evaluated (``references.csv`` rows without a trial) are diamonds, named.
"""
from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from space import reference_title

from .results import complete, feasible, read_csv


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


def staircase(xs: Sequence[float], ys: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """The 2-D front (x minimised, y maximised), by increasing x."""
    out, best = [], -math.inf
    for x, y in sorted(zip(xs, ys), key=lambda p: (p[0], -p[1])):
        if y > best:
            out.append((x, y))
            best = y
    return tuple(out)


def pareto_info(rows: Sequence[dict], hv_rows: Sequence[dict] = (), *, companions: Sequence[dict] = (),
                title: str = "", max_latency_ms: float | None = None, max_macs: float | None = None) -> ParetoInfo:
    """What ``draw_pareto`` shows, from ``trials.csv``-style rows, ``hypervolume.csv`` rows and the
    other reference networks' results (``companions_of``; those without a top-1 are left out)."""
    from .pareto import front_mask

    limits = {"max_latency_ms": max_latency_ms, "max_macs": max_macs}
    cand = complete(rows, **limits)
    top1 = [r["top1"] for r in cand]
    lat = [r["latency_ms"] for r in cand]
    macs = [r["macs"] for r in cand]
    mask = front_mask(top1, lat, macs) if cand else []
    ref = next((r for r in rows if r.get("reference") and r["state"] == "COMPLETE" and r.get("top1") is not None),
               None)
    bad = [r for r in complete(rows) if not feasible(r, **limits)]
    return ParetoInfo(
        title=title,
        points=tuple((r["number"], r["top1"], r["latency_ms"], r["macs"]) for r in cand),
        on_front=tuple(bool(m) for m in mask),
        front_latency=staircase(lat, top1),
        front_macs=staircase(macs, top1),
        reference=(ref["reference"], ref["top1"], ref["latency_ms"], ref["macs"]) if ref else None,
        infeasible=tuple((r["top1"], r["latency_ms"], r["macs"]) for r in bad),
        hypervolume=tuple((r["number"], r["hypervolume"]) for r in hv_rows),
        companions=tuple((c["name"], c["top1"], c["latency_ms"], c["macs"]) for c in companions
                         if c.get("top1") is not None),
    )


def _figure(ncols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.4), constrained_layout=True)
    return plt, fig, axes


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


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
    plt, fig, axes = _figure(3)
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
    return _png(plt, fig)


# -- all studies + NetAdapt ----------------------------------------------------------------------
@dataclass(frozen=True)
class Trajectory:
    label: str
    latency_ms: tuple[float, ...]
    macs: tuple[int, ...]
    top1: tuple[float, ...]


@dataclass(frozen=True)
class OverviewInfo:
    fronts: tuple[tuple[str, ParetoInfo], ...] = ()
    trajectories: tuple[Trajectory, ...] = field(default_factory=tuple)


def find_studies(results_dir: Path) -> dict[str, Path]:
    """{"space/study": folder} for every study folder with a ``trials.csv``."""
    base = Path(results_dir) / "search"
    return {f"{p.parent.parent.name}/{p.parent.name}": p.parent for p in sorted(base.glob("*/*/trials.csv"))}


def read_trajectory(path: Path, label: str) -> Trajectory:
    pts = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a run still going
        if all(isinstance(d.get(k), (int, float)) for k in ("latency_ms", "top1")):
            pts.append((float(d["latency_ms"]), int(d.get("macs") or 0), float(d["top1"])))
    return Trajectory(label, *(tuple(c) for c in zip(*pts))) if pts else Trajectory(label, (), (), ())


def overview_info(results_dir: Path, studies: Sequence[str] | None = None) -> OverviewInfo:
    from core.cli import UsageError

    found = find_studies(results_dir)
    if studies:
        chosen = {}
        for s in studies:
            match = {k: v for k, v in found.items() if k == s or k.split("/", 1)[1] == s}
            if not match:
                raise UsageError(f"no study {s!r} under {Path(results_dir) / 'search'}; found: "
                                 f"{', '.join(found) or 'none'}")
            chosen.update(match)
        found = chosen
    fronts = tuple((label, pareto_info(read_csv(folder / "trials.csv"), companions=_companions(folder), title=label))
                   for label, folder in found.items())
    trajs = tuple(read_trajectory(p, p.parent.name)
                  for p in sorted((Path(results_dir) / "netadapt").glob("*/history.jsonl")))
    return OverviewInfo(fronts, tuple(t for t in trajs if t.top1))


def _companions(folder: Path) -> list[dict]:
    """The other references a study evaluated: its ``references.csv`` rows without a trial."""
    path = folder / "references.csv"
    return [r for r in read_csv(path) if r.get("trial") is None] if path.is_file() else []


def draw_overview(info: OverviewInfo) -> bytes:
    plt, fig, axes = _figure(2)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
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
    fig.suptitle("bneck: Pareto fronts (stars: each space's reference; diamonds: the other reference)")
    return _png(plt, fig)


HELP = """usage: python -m search.plot [results_dir=results] [studies=[name,...]] [out=PATH] [--help]

Every study's Pareto front under <results_dir>/search/ (or the studies named, as `study` or
`space/study`) in one figure, with each reference network and the NetAdapt trajectories of
<results_dir>/netadapt/*; prints where the figure went.

Keys (key=value):
  results_dir=results   where search.run and netadapt.run wrote
  studies=null          a study name or a list [a,b] (null: all studies)
  out=null              the PNG to write (null: <results_dir>/plots/fronts.png)"""


def main(argv: Sequence[str]) -> int:
    from omegaconf import OmegaConf

    from core.cli import UsageError

    from .results import write_atomic

    if "--help" in argv or "-h" in argv:
        print(HELP)
        return 0
    flags = [a for a in argv if a.startswith("-")]
    if flags:
        raise UsageError(f"unknown option {flags[0]}: use --help, or key=value: results_dir=, studies=[..], out=")
    try:
        cfg = OmegaConf.to_container(OmegaConf.from_dotlist([a.lstrip("+") for a in argv]))
    except Exception as e:
        raise UsageError(f"bad argument: {str(e).splitlines()[0]} (use key=value: results_dir=, studies=[..], "
                         f"out=)") from None
    unknown = set(cfg) - {"results_dir", "studies", "out"}
    if unknown:
        raise UsageError(f"unknown keys {sorted(unknown)}: use results_dir=, studies=[name,...], out=")
    results_dir = Path(cfg.get("results_dir") or "results")
    studies = cfg.get("studies")
    studies = [studies] if isinstance(studies, str) else list(studies or [])
    info = overview_info(results_dir, studies)
    if not info.fronts and not info.trajectories:
        raise UsageError(f"nothing to plot under {results_dir}: run `python -m search.run +space=<name> "
                         f"results_dir={results_dir}` first")
    out = Path(cfg.get("out") or results_dir / "plots" / "fronts.png")
    write_atomic(out, draw_overview(info))
    print(f"{len(info.fronts)} front(s), {len(info.trajectories)} NetAdapt trajectory(ies): {out}")
    return 0


if __name__ == "__main__":
    from core.cli import run

    run(main, sys.argv[1:])
