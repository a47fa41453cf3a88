"""The study's tables, rebuilt from its storage: ``trials.csv``, ``pareto.csv``, ``hypervolume.csv``,
``references.csv``.

``references.csv`` holds both reference networks as this study saw them: the space's own (a trial,
its number in ``trial``) and the other ones (``trial`` empty), which are not points of the space and
are evaluated once per study outside its trials (the ``companions`` study user attribute).

Everything here is a pure function of the storage's trials, so any worker (or ``search.plot``)
rebuilds the same files; each is written to a temporary file and moved into place, so a reader or
a crash never sees half a table.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import FrozenTrial, Trial, TrialState

from core.files import write_atomic
from space import reference_title

from .pareto import HVRef, front_mask, hypervolume_history

PROTOCOL = "protocol.json"  # the study's accuracy protocol: how its top-1 figures were measured

# top1 is the holdout accuracy the sampler optimised; test_top1 is the test split's, only reported.
# latency_raw_ms: with latency=measured, the wall-clock figure before conversion to the table's unit.
# top1_per_seed: each seed's holdout top-1 (train.seeds), ';'-separated; top1 is their mean.
# device: where the trial trained (train.device, resolved per worker).
COLUMNS = ("number", "state", "arch", "top1", "top1_per_seed", "test_top1", "latency_ms", "latency_raw_ms", "macs",
           "params", "reference", "duration_s", "cpu_s", "device", "failure")
REFERENCE_COLUMNS = ("name", "trial", "arch", "top1", "top1_per_seed", "test_top1", "latency_ms", "latency_raw_ms",
                     "macs", "params", "duration_s", "cpu_s", "failure")


def retried(trials: Iterable[FrozenTrial]) -> dict[int, int]:
    """{number of a stale/interrupted trial: number of the trial that redoes it}."""
    out = {}
    for t in trials:
        orig = t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))
        if orig is not None:
            out.setdefault(orig, t.number)
    return out


def counts(t: FrozenTrial, redone: dict[int, int]) -> bool:
    """Whether a trial uses up budget: finished with a result (a divergence is one), or running.

    Not counted: a dead worker's or interrupted trial (it is redone), a surplus one (PRUNED when
    other workers had already filled the budget), a crash without a recorded reason.
    """
    if t.state in (TrialState.COMPLETE, TrialState.RUNNING):
        return t.number not in redone
    return t.state == TrialState.FAIL and bool(t.user_attrs.get("failure"))


def finished(t: FrozenTrial, redone: dict[int, int]) -> bool:
    return t.state != TrialState.RUNNING and counts(t, redone)


def _failure(t: FrozenTrial, redone: dict[int, int]) -> str:
    if t.user_attrs.get("failure"):
        return t.user_attrs["failure"]
    if t.state == TrialState.PRUNED:
        return "surplus: the budget was already filled by other workers"
    if t.state != TrialState.FAIL:
        return ""
    why = "interrupted" if t.user_attrs.get("interrupted") else "its worker died"
    if t.number in redone:
        return f"{why}; redone as trial {redone[t.number]}"
    return f"{why}; will be redone" if t.user_attrs.get("interrupted") else "error: see the worker's output"


def seed_cell(per_seed) -> str | None:
    """A trial's per-seed top-1 as one CSV cell, '0.81;0.84' (None for trials from before the column)."""
    return None if not per_seed else ";".join(f"{v:g}" for v in per_seed)


def trial_rows(trials: Sequence[FrozenTrial]) -> list[dict]:
    """One row per started trial (waiting ones are left out), by number."""
    redone = retried(trials)
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.WAITING:
            continue
        a = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, "arch": a.get("arch", ""),
                     "top1": a.get("top1") if t.state == TrialState.COMPLETE else None,
                     "top1_per_seed": (seed_cell(a.get("top1_per_seed"))
                                       if t.state == TrialState.COMPLETE else None),
                     "test_top1": a.get("test_top1") if t.state == TrialState.COMPLETE else None,
                     "latency_ms": a.get("latency_ms"), "latency_raw_ms": a.get("latency_raw_ms"),
                     "macs": a.get("macs"), "params": a.get("params"),
                     "reference": a.get("reference", ""), "duration_s": a.get("duration_s"),
                     "cpu_s": a.get("cpu_s"), "device": a.get("device", ""), "failure": _failure(t, redone)})
    return rows


def feasible(row: dict, max_latency_ms: float | None = None, max_macs: float | None = None) -> bool:
    return ((max_latency_ms is None or row["latency_ms"] <= max_latency_ms)
            and (max_macs is None or row["macs"] <= max_macs))


def complete(rows: Sequence[dict], **limits) -> list[dict]:
    """Rows with all three metrics that meet the constraints: the candidates for the front."""
    out = []
    for r in rows:
        if r["state"] == "COMPLETE" and all(_num(r[k]) for k in ("top1", "latency_ms", "macs")):
            if feasible(r, **limits):
                out.append(r)
    return out


def pareto_rows(rows: Sequence[dict], **limits) -> list[dict]:
    """The non-dominated complete, feasible rows (top-1 up, latency and MACs down), fastest first."""
    cand = complete(rows, **limits)
    if not cand:
        return []
    mask = front_mask([r["top1"] for r in cand], [r["latency_ms"] for r in cand], [r["macs"] for r in cand])
    return sorted((r for r, m in zip(cand, mask) if m), key=lambda r: (r["latency_ms"], -r["top1"]))


def hypervolume_rows(rows: Sequence[dict], ref: HVRef, **limits) -> list[dict]:
    """Hypervolume (normalised, see ``search.pareto``) after each complete trial, by number."""
    cand = complete(rows, **limits)
    hv = hypervolume_history(ref, [r["top1"] for r in cand], [r["latency_ms"] for r in cand],
                             [r["macs"] for r in cand])
    return [{"number": r["number"], "completed": i + 1, "hypervolume": round(h, 6)}
            for i, (r, h) in enumerate(zip(cand, hv))]


def companions_of(study_attrs: dict) -> list[dict]:
    """The other reference networks' results kept in a study's user attributes, by name."""
    return sorted((study_attrs.get("companions") or {}).values(), key=lambda c: c["name"])


def reference_rows(rows: Sequence[dict], companions: Sequence[dict]) -> list[dict]:
    """``references.csv``: the space's reference (its finished trial, once it has one), then the others."""
    own = next((r for r in rows if r["reference"] and r["state"] == "COMPLETE"), None)
    first = [{**own, "name": own["reference"], "trial": own["number"]}] if own else []
    return first + [{**c, "trial": None} for c in companions]


def to_csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def read_csv(path: Path) -> list[dict]:
    """Rows of a ``trials.csv``/``pareto.csv``/``references.csv`` with numbers parsed back."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("number", "trial", "macs", "params"):
            if r.get(k) not in (None, ""):
                r[k] = int(float(r[k]))
        for k in ("top1", "test_top1", "latency_ms", "latency_raw_ms", "duration_s", "cpu_s", "hypervolume"):
            if r.get(k) not in (None, ""):
                r[k] = float(r[k])
        for k in (*COLUMNS, "trial"):
            if r.get(k) == "":
                r[k] = None if k not in ("arch", "reference", "failure", "state") else ""
    return rows


@dataclass
class Written:
    trials: Path
    pareto: Path
    hypervolume: Path
    references: Path
    png: Path
    rows: list[dict] = field(default_factory=list)  # trials.csv's rows, for the figure
    hv: list[dict] = field(default_factory=list)


def write_results(folder: Path, trials: Sequence[FrozenTrial], ref: HVRef, *, companions: Sequence[dict] = (),
                  max_latency_ms: float | None = None, max_macs: float | None = None,
                  protocol: dict | None = None) -> Written:
    """Rebuild every table of a study in ``folder`` from its trials and ``companions_of`` it.

    Tables only: ``search.plot.write_pareto_png`` draws ``pareto.png`` from the same rows.
    """
    folder = Path(folder)
    limits = {"max_latency_ms": max_latency_ms, "max_macs": max_macs}
    rows = trial_rows(trials)
    front = pareto_rows(rows, **limits)
    hv = hypervolume_rows(rows, ref, **limits)
    out = Written(folder / "trials.csv", folder / "pareto.csv", folder / "hypervolume.csv",
                  folder / "references.csv", folder / "pareto.png")
    write_atomic(out.trials, to_csv(rows, COLUMNS))
    write_atomic(out.pareto, to_csv(front, COLUMNS))
    write_atomic(out.hypervolume, to_csv(hv, ("number", "completed", "hypervolume")))
    write_atomic(out.references, to_csv(reference_rows(rows, companions), REFERENCE_COLUMNS))
    if protocol is not None:
        write_atomic(folder / PROTOCOL, json.dumps(protocol, indent=1, sort_keys=True) + "\n")
    out.rows, out.hv = rows, hv
    return out


def _num(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def duplicate_reference(trial: Trial, trials, redone: dict[int, int]) -> int | None:
    """The earlier trial that already is (or will be) the study's reference run, if ``trial`` repeats it.

    Workers opening a new study together can each see no reference trial and each enqueue one;
    storages offer no compare-and-set, so the later copy is dropped when it is run instead."""
    if not trial.user_attrs.get("reference"):
        return None
    for t in trials:
        if (t.number < trial.number and t.user_attrs.get("reference")
                and (t.state == TrialState.WAITING or counts(t, redone))):
            return t.number
    return None


def front_postfix(pareto_csv: Path) -> str:
    """The progress bar's summary of a study's front."""
    front = read_csv(pareto_csv)
    if not front:
        return "front: none yet"
    best = max(front, key=lambda r: r["top1"])
    fast = min(front, key=lambda r: r["latency_ms"])
    return (f"front {len(front)} | best {best['top1']:.1%}@{best['latency_ms']:.2f}ms | "
            f"fastest {fast['top1']:.1%}@{fast['latency_ms']:.2f}ms")


def companion_line(c: dict, space_name: str) -> str:
    got = c["failure"] or f"top1 {c['top1']:.1%}, {c['latency_ms']:.2f} ms, {c['macs'] / 1e6:.0f}M MACs"
    return (f"evaluated reference {c['name']} ({reference_title(c['name'])}, outside space {space_name}) "
            f"as a trial, in {c['duration_s']:.0f} s: {got}")
