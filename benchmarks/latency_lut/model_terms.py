"""Which terms earn a place in the latency model? Each candidate refitted on every stored table's own timings.

Every table line of ``latency_lut*.jsonl`` (sessions 21 on, model 4 and later) keeps its 15 calibration networks'
features and measured latencies. On those timings this script refits the model's terms without the boundary term
(model 6: call weight, depthwise-first blocks, weights read from memory, feature maps), with it (model 7: elements
crossing the entries' boundaries), with the reload term besides (model 8: weights an entry keeps in its core's L2 alone),
and model 8 with a cost per network or a share of the entries' sum on top (eager torch's blocks ran slower in the
network than alone: session 28 tried it as model 9 and did not adopt it), each checked leave-one-out as a build checks itself, and compares each with the
model before it, table by table: the rms, the worst, the share within ±5% and the mean error of the smallest third (the
networks models 4-6 under-predicted). A column an older line lacks is computed from the networks' names (input 224);
the reload term's column is computed so on every line and every backend (a table records it only where the model
uses it), its L2 the line's, else this machine's (every stored table was built on this VM). Nothing is timed; it runs
in seconds.

    python -m benchmarks.latency_lut.model_terms           # writes model_terms.md beside this file

A table is one observation; a difference is shown when the sign test over tables says so (p < 0.05), else it is
reported as no difference. Tables are grouped by how their entries were timed (format 5, session 26 on: paired with
a reference block; before: alone), since what an entry timed alone carries depends on it.
"""
from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from benchmarks.common import read_jsonl, write_report
from measure import calibration_rows, l2_bytes, mboundary, named_full_set, refit_model, reload_mweights

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


BASE = ("call_weight", "depthwise_ms", "cold_ms", "feature_ms")  # model 6
CANDIDATES = {"model 6": BASE, "model 7 (+ boundary)": (*BASE, "boundary_ms"),
              "model 7 + cost per network": (*BASE, "boundary_ms", "overhead_ms"),
              "model 8 (+ reload)": (*BASE, "boundary_ms", "reload_ms"),
              "model 8 + cost per network": (*BASE, "boundary_ms", "reload_ms", "overhead_ms"),
              "model 8 + context share": (*BASE, "boundary_ms", "reload_ms", "context_share")}
# (candidate, the model it is judged against): session 27 judged model 7 and a cost per network against model 6
PAIRS = (("model 7 (+ boundary)", "model 6"), ("model 7 + cost per network", "model 6"),
         ("model 8 (+ reload)", "model 7 (+ boundary)"), ("model 8 + cost per network", "model 8 (+ reload)"),
         ("model 8 + context share", "model 8 (+ reload)"))


def compare(folder: Path) -> list[dict]:
    named = named_full_set()
    rows = []
    for stem, t in tables(folder):
        names = t.get("calibration_names") or []
        known = names and all(n in named for n in names)  # input size 224: every stored run's
        if not known:
            continue
        cal = dict(t)
        if "mboundary" not in t:
            cal["mboundary"] = [mboundary(named[n], 224) for n in names]
        # the candidate on every backend (a table records it only where the model uses it: measure.calibration)
        cal["mreload"] = [reload_mweights(named[n], t.get("l2_bytes") or l2_bytes()) for n in names]
        rows_ = [{**r, "context_ms": r["sum_ms"]} for r in calibration_rows(cal)]  # the context share's column
        fits = {k: refit_model(cal, terms, rows_) for k, terms in CANDIDATES.items()}
        rows.append({"report": stem, "backend": t["backend"], "table": t.get("table", 1),
                     "format5": bool(t.get("block_ms")),
                     **{k: summary(held, t["measured_ms"]) for k, (_, held) in fits.items()},
                     "boundary_ms": fits["model 7 (+ boundary)"][0]["boundary_ms"],
                     "reload_ms": fits["model 8 (+ reload)"][0]["reload_ms"],
                     "context_share": fits["model 8 + context share"][0]["context_share"],
                     "overhead_ms": fits["model 8 + cost per network"][0]["overhead_ms"]})
    return rows


def sign_test(wins: int, n: int) -> float:
    """Two-sided p of ``wins`` of ``n`` under a fair coin."""
    from scipy.stats import binomtest

    return binomtest(wins, n).pvalue if n else 1.0


def report(rows: list[dict]) -> str:
    names = list(CANDIDATES)
    lines = ["# Which terms earn a place in the latency model? (held-out error, refitted on stored tables)", "",
             "Each row: one table of `latency_lut*.jsonl` (its report file and which table of the run), its 15 "
             "calibration networks refitted leave-one-out by each candidate: rms / worst / share within ±5% / mean "
             "error of the smallest third. `python -m benchmarks.latency_lut.model_terms` regenerates this file; "
             "nothing is timed.", "",
             "| report | backend | table | entries | " + " | ".join(names)
             + " | boundary term (model 7) | reload term (model 8) | context share | cost per network |",
             "|---|---|---|---|" + "---|" * len(names) + "---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]['rms']:.1%} / {r[k]['worst']:+.1%} / {r[k]['within5']:.0%} / {r[k]['small']:+.1%}"
                 for k in names]
        lines.append(f"| {r['report']} | {r['backend']} | {r['table']} | {'paired' if r['format5'] else 'alone'} | "
                     + " | ".join(cells) + f" | {r['boundary_ms']:.3f} ms | {r['reload_ms']:.3f} ms "
                     f"| {r['context_share']:.1%} | {r['overhead_ms']:.3f} ms |")
    lines += ["", "## Each candidate against the model before it, per backend and how entries were timed", ""]
    for backend in sorted({r["backend"] for r in rows}):
        for paired in (True, False):
            mine = [r for r in rows if r["backend"] == backend and r["format5"] == paired]
            if not mine:
                continue
            for k, before in PAIRS:
                lines.append(f"- {backend}, entries timed {'paired (format 5)' if paired else 'alone (formats 3-4)'}, "
                             f"{len(mine)} tables, {k} against {before}: " + _versus(mine, k, before))
    return "\n".join(lines) + "\n"


def _versus(rows: list[dict], k: str, base: str) -> str:
    lower = sum(r[k]["rms"] < r[base]["rms"] - 1e-9 for r in rows)
    higher = sum(r[k]["rms"] > r[base]["rms"] + 1e-9 for r in rows)
    p = sign_test(lower, lower + higher)
    verdict = (("lower" if lower > higher else "higher") + f" (p {p:.3g})") if p < 0.05 else (
        f"no difference shown (p {p:.2g})")
    return (f"held-out rms lower in {lower}, higher in {higher}, equal in {len(rows) - lower - higher}: {verdict}; "
            f"median rms {_median(rows, base, 'rms')} against {_median(rows, k, 'rms')}, median smallest third "
            f"{_median(rows, base, 'small', signed=True)} against {_median(rows, k, 'small', signed=True)}.")


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
