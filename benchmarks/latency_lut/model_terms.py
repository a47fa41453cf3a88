"""Does a cost per network earn a place in the latency model? Refitted on every stored table's own timings.

Every table line of ``latency_lut*.jsonl`` (sessions 21-27, model 4 and later) keeps its 15 calibration networks'
features and measured latencies. On those timings this script refits the current model (``measure.calibration``,
model 6) and the same with a cost per network (>= 0, ``fit_offset``), each checked leave-one-out as a build checks
itself, and compares their held-out errors table by table: the rms, the worst, the share within ±5% and the mean
error of the smallest third (the networks the model has under-predicted). Nothing is timed; it runs in seconds.

    python -m benchmarks.latency_lut.model_terms           # writes model_terms.md beside this file

A table is one observation; a difference is shown when the sign test over tables says so (p < 0.05), else it is
reported as no difference.
"""
from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from benchmarks.common import read_jsonl, write_report
from measure import offset_terms, refit_heldout

HERE = Path(__file__).resolve().parent


def tables(folder: Path) -> list[tuple[str, dict]]:
    """(report file stem, table line) for every model-4+ table line of the ``latency_lut*.jsonl`` in ``folder``; a table
    a later report reused (the same measured latencies) counts once, under its first report."""
    out, seen = [], set()
    for path in sorted(folder.glob("latency_lut*.jsonl")):
        for r in read_jsonl(path):
            if r.get("kind") == "table" and r.get("model", 0) >= 4 and len(r.get("measured_ms") or []) >= 5:
                key = (r["backend"], tuple(r["measured_ms"]))
                if key not in seen:
                    seen.add(key)
                    out.append((path.stem, r))
    return out


def summary(errors: list[float], measured: list[float]) -> dict:
    """rms, worst (signed), share within ±5%, and mean of the smallest third by measured latency."""
    order = sorted(range(len(errors)), key=lambda i: measured[i])
    small = [errors[i] for i in order[: len(order) // 3]]
    return {"rms": math.sqrt(statistics.fmean(e * e for e in errors)), "worst": max(errors, key=abs),
            "within5": sum(abs(e) <= 0.05 for e in errors) / len(errors), "small": statistics.fmean(small)}


def compare(folder: Path) -> list[dict]:
    rows = []
    for stem, t in tables(folder):
        base, offset = refit_heldout(t), refit_heldout(t, offset=True)
        terms = offset_terms(t)
        rows.append({"report": stem, "backend": t["backend"], "table": t.get("table", 1),
                     "model": summary(base, t["measured_ms"]), "offset": summary(offset, t["measured_ms"]),
                     "overhead_ms": terms["overhead_ms"], "call_weight": (t.get("call_weight"), terms["call_weight"])})
    return rows


def sign_test(wins: int, n: int) -> float:
    """Two-sided p of ``wins`` of ``n`` under a fair coin."""
    from scipy.stats import binomtest

    return binomtest(wins, n).pvalue if n else 1.0


def report(rows: list[dict]) -> str:
    lines = ["# A cost per network in the latency model? (held-out error, refitted on stored tables)", "",
             "Each row: one table of `latency_lut*.jsonl` (its report file and which table of the run), its 15 "
             "calibration networks refitted leave-one-out by the current model (model 6 terms) and by the same with a "
             "cost per network (>= 0). `python -m benchmarks.latency_lut.model_terms` regenerates this file; nothing "
             "is timed.", "",
             "| report | backend | table | model: rms / worst / ±5% / smallest third | + cost per network: rms / worst "
             "/ ±5% / smallest third | fitted cost per network | call weight (model, + cost) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        m, o = r["model"], r["offset"]
        cw = r["call_weight"]
        lines.append(f"| {r['report']} | {r['backend']} | {r['table']} | {m['rms']:.1%} / {m['worst']:+.1%} / "
                     f"{m['within5']:.0%} / {m['small']:+.1%} | {o['rms']:.1%} / {o['worst']:+.1%} / {o['within5']:.0%} "
                     f"/ {o['small']:+.1%} | {r['overhead_ms']:.3f} ms | "
                     f"{'' if cw[0] is None else f'{cw[0]:.2f}'}, {cw[1]:.2f} |")
    lines += ["", "## Per backend", ""]
    for backend in sorted({r["backend"] for r in rows}):
        mine = [r for r in rows if r["backend"] == backend]
        lower = sum(r["offset"]["rms"] < r["model"]["rms"] - 1e-9 for r in mine)
        higher = sum(r["offset"]["rms"] > r["model"]["rms"] + 1e-9 for r in mine)
        p = sign_test(lower, lower + higher)
        fitted = sum(r["overhead_ms"] > 1e-6 for r in mine)
        verdict = (("lower" if lower > higher else "higher") + f" (p {p:.3g})") if p < 0.05 else (
            f"no difference shown (p {p:.2g})")
        lines.append(
            f"- {backend}, {len(mine)} tables: with a cost per network the held-out rms is lower in {lower}, higher in "
            f"{higher}, equal in {len(mine) - lower - higher}: {verdict}. Median rms {_median(mine, 'model', 'rms')} "
            f"against {_median(mine, 'offset', 'rms')}; median of the smallest third's mean error "
            f"{_median(mine, 'model', 'small', signed=True)} against {_median(mine, 'offset', 'small', signed=True)}; "
            f"the cost fitted above 0 in {fitted} of {len(mine)}.")
    return "\n".join(lines) + "\n"


def _median(rows: list[dict], which: str, key: str, signed: bool = False) -> str:
    value = statistics.median(r[which][key] for r in rows)
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, default=HERE, help="where the latency_lut*.jsonl files are")
    p.add_argument("--out", type=Path, default=HERE / "model_terms.md")
    args = p.parse_args()
    text = write_report(args.out, report(compare(args.folder)))
    print(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
