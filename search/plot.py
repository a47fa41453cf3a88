"""Pareto plots. As in ``optuna.visualization``: ``*_info`` computes plain data, ``draw_*`` draws it.

``python -m search.plot [results_dir=results] [studies=[name,...]] [out=PATH]`` draws every study's
front under ``<results_dir>/search/`` (or the ones named, as ``study`` or ``space/study``) in one
figure, with each reference network and the NetAdapt trajectories of ``<results_dir>/netadapt/*``,
and prints where the figure went. A study's own reference (a trial) is starred; the other reference
networks it evaluated (``references.csv`` rows without a trial) are diamonds, named.
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from plots import OverviewInfo, ParetoInfo, Trajectory
from plots.pareto import OverviewGroup

from .results import PROTOCOL, complete, feasible, read_csv


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
        front_test=tuple((r["latency_ms"], r["macs"], r["test_top1"]) for r, m in zip(cand, mask)
                         if m and r.get("test_top1") is not None),
    )


def write_pareto_png(path: Path, rows: Sequence[dict], hv_rows: Sequence[dict], *, companions: Sequence[dict] = (),
                     title: str = "", **limits) -> Path:
    """``pareto.png`` of a study, from the rows ``results.write_results`` wrote."""
    from core.files import write_atomic
    from plots import draw_pareto

    write_atomic(path, draw_pareto(pareto_info(rows, hv_rows, companions=companions, title=title, **limits)))
    return path


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


def protocol_text(p: dict | None) -> str:
    """One line that tells two accuracy protocols apart: data and split, input size, estimator, budget."""
    if not p:
        return "accuracy protocol not recorded (a result written before protocols were)"
    budget = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in (p.get("budget") or {}).items())
    return (f"top-1 on {p.get('dataset')} {p.get('selection', 'holdout')} ({p.get('n_holdout')} images), "
            f"{p.get('input_size')} px; {p.get('estimator')}: {budget}")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def overview_info(results_dir: Path, studies: Sequence[str] | None = None) -> OverviewInfo:
    """Every chosen study's front and every NetAdapt trajectory, grouped by accuracy protocol: a
    group's top-1 figures were measured the same way, different groups' were not."""
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
    groups: dict[str, dict[str, list]] = {}
    for label, folder in found.items():
        info = pareto_info(read_csv(folder / "trials.csv"), companions=_companions(folder), title=label)
        key = protocol_text(_read_json(folder / PROTOCOL))
        groups.setdefault(key, {"fronts": [], "trajectories": []})["fronts"].append((label, info))
    for path in sorted((Path(results_dir) / "netadapt").glob("*/history.jsonl")):
        traj = read_trajectory(path, path.parent.name)
        if traj.top1:
            key = protocol_text((_read_json(path.parent / "run.json") or {}).get("protocol"))
            groups.setdefault(key, {"fronts": [], "trajectories": []})["trajectories"].append(traj)
    return OverviewInfo(tuple(OverviewGroup(k, tuple(g["fronts"]), tuple(g["trajectories"]))
                              for k, g in groups.items()))


def _companions(folder: Path) -> list[dict]:
    """The other references a study evaluated: its ``references.csv`` rows without a trial."""
    path = folder / "references.csv"
    return [r for r in read_csv(path) if r.get("trial") is None] if path.is_file() else []


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
    from core.files import write_atomic
    from plots import draw_overview

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
    print(f"{len(info.fronts)} front(s), {len(info.trajectories)} NetAdapt trajectory(ies) under "
          f"{len(info.groups)} accuracy protocol(s), one row of panels each: {out}")
    return 0


if __name__ == "__main__":
    from core.cli import run

    run(main, sys.argv[1:])
