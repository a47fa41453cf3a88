"""How well the per-block latency table predicts end-to-end latency, per backend (issues 13 and 27).

For each backend: first ``host_noise.py``'s measurement (``--noise-seconds``; the floor a validation cannot
beat on this host), then one table (``python -m measure.lut build`` for every built-in space: their entries,
the fixed calibration set of ``measure.calibration`` and its held-out error), then, twice, predicted vs
measured end to end for:

- ``random <space>``: ``--n`` seeded random points of each space (``measure.lut validate set=random``);
- ``references``: MobileNetV3-Small and -Large at x0.35, x0.5, x0.75, x1 and x1.25 (``set=references``);
- ``netadapt-shaped``: 5 networks from each reference made by NetAdapt's own proposal step
  (``netadapt.proposals.propose``, delta 2% of the start's MACs per step) taking a seeded random
  proposal each step until a seeded MAC budget in [0.5, 0.9] is reached: the non-uniform widths
  NetAdapt outputs, without training NetAdapt runs to get them (the accuracy-based choice is what the
  seeded choice replaces).

Each set's row has the shares within ±5%/±10% and the mean signed error per size tercile (a model biased
by size shows one sign per tercile) and, from session 24, the median of the two probes' ratio (V3-Small /
V3-Large) around its networks against the table's over its build: the host's state while the set was timed. With ``--tables 2`` a second table is built from scratch after the
validation runs and both tables' predictions of every validated network are compared (issue 27: two
tables built at different times should agree within ±3%).

Measured latencies are at the table's reference speed (``measure.probe``); the shares against the
latencies as timed, before that conversion, are reported beside them. Repeat spread: MobileNetV3-Small
timed in 5 fresh processes, each opening the table, as timed and converted (coefficient of variation); up to
session 22 it was MobileNetV3-Large, the probe itself, whose converted figure is its ratio to itself.
Appends one JSON line per finished piece to ``benchmarks/latency_lut/latency_lut.jsonl`` (a rerun resumes) and writes
``benchmarks/latency_lut/latency_lut.md`` from it.

    python -m benchmarks.latency_lut.latency_lut [--results-dir <empty dir>] [--n 50] [--backends onnxruntime torch]
        [--tables 2] [--noise-seconds 60] [--note "what the host was doing"] ...  (--help for the rest)

Before a backend is timed, five probe timings (MobileNetV3-Large) must spread by <= ``--max-spread``
((max-min)/median), and at most 10% of ``--sweep-blocks`` blocks timed twice may differ by more than 3%
(``measure.noise.sweep``: what a build calls busy): on a noisier host the run stops with exit 2 (``--force``
times anyway).

The tables live in ``--results-dir`` and resume there (a killed build keeps its timings); a finished
validation run of a set is kept in the JSON lines and not redone.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import append_jsonl, read_jsonl, write_report
from core import quiet_warnings

ROOT = Path(__file__).resolve().parents[2]
from space import V3_LARGE, V3_SMALL, ArchSpec, available_spaces, format_arch, load_space  # noqa: E402

quiet_warnings()
from measure import (  # noqa: E402
    LatencyTable,
    calibration_summary,
    count_macs,
    is_network,
    predict_model,
    refit_model,
    scale_heldout,
    tercile_bias,
    validation_archs,
    within,
)
from measure import build_table as build  # noqa: E402
from measure import compare_table as compare  # noqa: E402

RUNS = 2
HERE = Path(__file__).resolve().parent


def netadapt_shaped(per_start: int = 5, seed: int = 0, input_size: int = 224) -> list[tuple[str, ArchSpec]]:
    """Networks of the shape NetAdapt outputs (module note): seeded random walks of its proposal step."""
    from netadapt import propose

    def macs(a: ArchSpec) -> float:
        return float(count_macs(a, input_size))

    out = []
    for name, start in (("V3-Small", V3_SMALL), ("V3-Large", V3_LARGE)):
        for i in range(per_start):
            rng = random.Random(f"netadapt-shaped-{name}-{seed}-{i}")
            budget, arch = rng.uniform(0.5, 0.9) * macs(start), start
            while macs(arch) > budget:
                made = propose(arch, macs, 0.02 * macs(start)).made
                if not made:
                    break
                arch = rng.choice(made).arch
            out.append(("netadapt-shaped", arch))
    return out


def sets(n: int, per_start: int = 5, spaces: list[str] | None = None,
         seed: int = 0) -> dict[str, list[tuple[str, ArchSpec]]]:
    """The validated sets; ``seed`` draws other random and NetAdapt-shaped networks (named with it when not 0)."""
    tag = f" (seed {seed})" if seed else ""
    out = {f"random {name}{tag}": validation_archs("random", load_space(name), n, seed, None)
           for name in spaces or available_spaces()}
    out["references"] = validation_archs("references", load_space("v3_large"), n, 0, None)
    out[f"netadapt-shaped{tag}"] = netadapt_shaped(per_start, seed)
    return out


# The model before the table's, by its record key in a validated row: refitted on the same calibration timings and set
# beside each validated network, so one set of timings judges both (model 6 from session 27, model 7 from session 28;
# model 8 beside model 9, a torch-only context share session 28 tried and did not adopt).
BESIDE = {"model6_ms": ("model 6", "without the boundary term",
                        ("call_weight", "depthwise_ms", "cold_ms", "feature_ms")),
          "model7_ms": ("model 7", "without the reload term",
                        ("call_weight", "depthwise_ms", "cold_ms", "feature_ms", "boundary_ms")),
          "model8_ms": ("model 8", "the model in use, without model 9's context share",
                        ("call_weight", "depthwise_ms", "cold_ms", "feature_ms", "boundary_ms", "reload_ms"))}
PREVIOUS = "model7_ms"


def previous_model(table: LatencyTable, named: list[tuple[str, ArchSpec]], key: str = PREVIOUS) -> list[float]:
    """What the model before the table's (``BESIDE[key]``, refitted on the table's calibration timings) predicts
    for ``named``."""
    terms, _ = refit_model(table.calibration, BESIDE[key][2])
    cache, l2 = table.calibration.get("cache_bytes"), table.calibration.get("l2_bytes")
    return [round(predict_model(terms, table.features(a, cache, l2=l2)), 4) for _, a in named]


def repeat_in_processes(results_dir: str, backend: str, k: int, passes: int = 2) -> list[dict]:
    """V3-Small timed as the table times networks, in ``k`` fresh processes (each loads the table anew). Not
    V3-Large: it is the probe, and a network timed paired with itself converts to the unit whatever happens."""
    code = ("import json, sys; from core.cli import quiet_warnings; quiet_warnings(); "
            "from measure import LatencyTable; from space import V3_SMALL; "
            f"t = LatencyTable.open({results_dir!r}, backend={backend!r}, passes={passes}); "
            "print(json.dumps(t.measure_networks([V3_SMALL])[0]))")
    out = []
    for _ in range(k):
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def host_check(backend: str, limit: float, n: int = 5, timer=None, sweep_blocks: int = 0, time_entry=None) -> dict:
    """Five timings of the probe network before anything else: their spread says whether the host is quiet
    enough for a benchmark whose targets are +-5% (neighbours of a VM slow it in bursts no probe can follow).
    With ``sweep_blocks``, ``measure.noise.sweep`` too: over ``calibration.RETIMED`` of those blocks disagreeing
    with themselves, the build would be called busy (session 24: the 5 timings spread 2-4% while 31-46% of
    the build's entries were timed again)."""
    from measure import SpeedProbe, host_sweep

    probe = SpeedProbe(backend=backend, threads=1, input_size=224, batch=1, channels_last=False, timer=timer)
    ref = probe.reference(n)
    found = host_sweep(backend, sweep_blocks, time_entry=time_entry) if sweep_blocks else {}
    return {**ref, **found, "quiet": ref["spread"] <= limit and not found.get("sweep_busy", False)}


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.mean(values)


def build_table(backend: str, results_dir: str, seq: int = 1, spaces: list[str] | None = None,
                passes: int = 2) -> tuple[LatencyTable, dict]:
    """``backend``'s table under ``results_dir`` built for ``spaces`` (default every space; ``[]``: the
    calibration set alone, the validated networks' entries then timed as they are predicted), and its JSON
    line (``seq``: which table)."""
    table = LatencyTable.open(results_dir, backend=backend, passes=passes)  # else the defaults of conf/latency/lut.yaml
    t0 = time.time()
    for name in available_spaces() if spaces is None else spaces:
        build(load_space(name), table)
    table.ensure_calibrated()
    cal = table.calibration
    return table, {"backend": backend, "kind": "table", "table": seq, "name": table.path.name,
                   "build_s": time.time() - t0, **calibration_summary(cal),
                   "reference_ms": table.reference_ms, "probe_spread": table.reference.get("spread"),
                   "calibration_errors": cal.get("errors"), "heldout_errors": cal.get("heldout_errors"),
                   "calibration_names": cal.get("names"), "measured_ms": cal.get("measured_ms"),
                   "distrust": table.distrust(), "passes": pass_counts(table), "load": os.getloadavg()[0],
                   "small_large": table.small_large, "block_ms": table.block_ms, "own_ms": table.own_ms,
                   "unit_from": (table.reference.get("unit") or {}).get("from")}


def pass_counts(table: LatencyTable) -> dict[str, int]:
    """How many of ``table``'s entries (networks included) hold each number of passes: more than ``passes`` were
    timed again to confirm their fastest (``latency.confirm``)."""
    counts = collections.Counter(len(r["passes"]) for r in table.entries.values())
    return {str(k): counts[k] for k in sorted(counts)}


def bench(backend: str, results_dir: str, n: int, repeat: int, results: Path, tables: int = 1, per_start: int = 5,
          noise_seconds: float = 60, spaces: list[str] | None = None, passes: int = 2,
          calibration_only: bool = False, seed: int = 0) -> None:
    """Time the host's noise, build ``backend``'s table, then each (set, run), the repeat in processes and the
    second table not yet in ``results``: one JSON line per finished piece, so a killed run resumes."""
    done = {(r.get("backend"), r["kind"], r.get("set"), r.get("run"), r.get("table")) for r in read_jsonl(results)}
    if noise_seconds > 0 and (backend, "noise", None, None, None) not in done:
        from measure import host_noise, host_sweep  # the floor no table can beat on this host, now

        append_jsonl(results, {"backend": backend, "kind": "noise", "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                               **host_noise(backend, noise_seconds, 20), **host_sweep(backend)})
    table, record = build_table(backend, results_dir, spaces=[] if calibration_only else spaces, passes=passes)
    if (backend, "table", None, None, 1) not in done:
        append_jsonl(results, record)
    validation = sets(n, per_start, spaces, seed)
    for set_name, named in validation.items():
        for run in range(1, RUNS + 1):
            if (backend, "set", set_name, run, None) in done:
                continue
            t0 = time.time()
            rows = compare(table, named)
            for row, ms in zip(rows, previous_model(table, named)):
                row[PREVIOUS] = ms
            append_jsonl(results, {"backend": backend, "kind": "set", "set": set_name, "run": run,
                             "seconds": time.time() - t0, "load": os.getloadavg()[0], "rows": rows})
    if repeat and (backend, "repeat", None, None, None) not in done:
        reps = repeat_in_processes(results_dir, backend, repeat, passes)
        append_jsonl(results, {"backend": backend, "kind": "repeat", "network": "MobileNetV3-Small",
                               "ms": [r["ms"] for r in reps],
                         "as_timed_ms": [r["as_timed_ms"] for r in reps], "load": os.getloadavg()[0]})
    if tables >= 2 and (backend, "agreement", None, None, 2) not in done:
        # A second table from scratch, later: what a user rebuilding on this machine would get.
        archs = list({format_arch(a): a for named in validation.values() for _, a in named}.values())
        second, record = build_table(backend, str(Path(results_dir) / "table2"), seq=2,
                                     spaces=[] if calibration_only else spaces, passes=passes)
        append_jsonl(results, record)
        first, other = [table.predict(a) for a in archs], [second.predict(a) for a in archs]
        append_jsonl(results, {"backend": backend, "kind": "agreement", "table": 2, "networks": len(archs),
                         "diffs": [round(b / a - 1, 5) for a, b in zip(first, other)],
                         "entries": entry_agreement(table, second), "load": os.getloadavg()[0]})


def entry_agreement(first: LatencyTable, second: LatencyTable) -> dict:
    """How far the block entries (stem, blocks, heads: not networks, not empty graphs) two tables share moved
    between them: the median and sd of second / first - 1, and how many beyond ±5%."""
    keys = [k for k in first.entries if k in second.entries and not is_network(k) and not k.startswith("call_")]
    d = [second.entries[k]["p10"] / first.entries[k]["p10"] - 1 for k in keys]
    return {"n": len(d), "median": round(statistics.median(d), 5), "sd": round(statistics.pstdev(d), 5),
            "beyond_5": sum(abs(x) > 0.05 for x in d)} if d else {}


def host_state(rows: list[dict], built: float | None) -> str:
    """The median of the two probes' ratio (V3-Small / V3-Large) around a set's networks against the table's over
    its build (blank for runs before validate recorded it): the host's state while the set was timed."""
    ratios = [x["probes_ratio"] for x in rows if x.get("probes_ratio")]
    return f"{statistics.median(ratios) / built - 1:+.1%}" if ratios and built else ""


def section(backend: str, records: list[dict]) -> list[str]:
    mine = [r for r in records if r.get("backend") == backend]
    tables = [r for r in mine if r["kind"] == "table" and r.get("table", 1) == 1]
    if not tables:
        return []
    t = tables[-1]
    lines = [f"### {backend}", ""]
    for r in (x for x in mine if x["kind"] == "noise"):
        lines += [f"Host noise before it (`host_noise.py`'s measurement, {r['date']} UTC, {r['seconds']:.0f} s, load "
                  f"{r['load_before']:.2f}): Small/Large p10 ratio within ±5% in {r['ratio_within_5']:.0%} of "
                  f"{r['windows']} windows (spread {r['ratio_spread']:.1%}; the acceptance asks >= 80% before a run "
                  "counts)" + (f"; {r['sweep_retimed']} of {r['sweep_blocks']} blocks timed twice differed by more "
                               f"than 3% ({r['sweep_share']:.0%}: a build would be called busy over 10%)"
                               if r.get("sweep_blocks") else "") + ".", ""]
    noisy = [r for r in mine if r["kind"] == "noise" and not r["ratio_within_5"] >= 0.8]
    if noisy:
        lines += [f"The host was noisier than the acceptance allows ({noisy[-1]['ratio_within_5']:.0%} of windows "
                  "within ±5%, not >= 80%): none of the figures below shows the table's accuracy, and no difference "
                  "between models or runs is shown by them.", ""]
    lines += [table_line(t), "",
              "| set | networks | run | ±5% / ±10% | error mean ± sd | worst error | mean error by size tercile "
              "(small, middle, large) | as timed: ±5% / ±10% | s | load | run 2 / run 1 measured, sd "
              "| probes' ratio vs the build's |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    runs: dict[str, dict[int, dict]] = {}
    for r in mine:
        if r["kind"] == "set":
            runs.setdefault(r["set"], {})[r["run"]] = r
    for set_name, by_run in runs.items():
        for run, r in sorted(by_run.items()):
            rows = r["rows"]
            errors = [x["error"] for x in rows]
            raw = [{"error": x["predicted_ms"] / x["measured_raw_ms"] - 1} for x in rows]
            again = ""
            if run > 1 and 1 in by_run:
                ratios = [b["measured_ms"] / a["measured_ms"] - 1 for a, b in zip(by_run[1]["rows"], rows)]
                again = f"{statistics.pstdev(ratios):.1%}"
            bias = tercile_bias(rows)
            lines.append(f"| {set_name} | {len(rows)} | {run} | {within(rows, 0.05):.0%} / {within(rows, 0.10):.0%} "
                         f"| {statistics.mean(errors):+.1%} ± {statistics.pstdev(errors):.1%} "
                         f"| {max(errors, key=abs):+.1%} | {', '.join(f'{b:+.1%}' for b in bias) if bias else ''} "
                         f"| {within(raw, 0.05):.0%} / {within(raw, 0.10):.0%} "
                         f"| {r['seconds']:.0f} | {r['load']:.1f} | {again} | {host_state(rows, t.get('small_large'))} |")
    lines += _beside_lines(runs)
    for r in (x for x in mine if x["kind"] == "repeat"):
        probe = "network" not in r  # up to session 22: V3-Large, the probe, timed paired with itself
        lines += ["", f"{r.get('network', 'MobileNetV3-Large')} in {len(r['ms'])} fresh processes: converted "
                  f"{statistics.mean(r['ms']):.3f} ms, "
                  f"CV {cv(r['ms']):.1%} (target <= 2%); as timed {statistics.mean(r['as_timed_ms']):.3f} ms, "
                  f"CV {cv(r['as_timed_ms']):.1%}."
                  + (" It is the probe itself: converted, it is its ratio to itself times the unit, so only the CV "
                     "as timed says how far it moved between processes." if probe else "")]
    for second in (x for x in mine if x["kind"] == "table" and x.get("table") == 2):
        lines += ["", "Second table, built from scratch after the validation runs: " + table_line(second)[0].lower()
                  + table_line(second)[1:]]
    units = {x.get("table", 1): x["reference_ms"] for x in mine if x["kind"] == "table"}
    own = {x.get("table", 1): x.get("own_ms") or x["reference_ms"] for x in mine if x["kind"] == "table"}
    for r in (x for x in mine if x["kind"] == "agreement"):
        d = [{"error": x} for x in r["diffs"]]
        lines += ["", f"The two tables' predictions of the {r['networks']} validated networks: second / first - 1 "
                  f"{min(r['diffs']):+.1%} to {max(r['diffs']):+.1%} (mean {statistics.mean(r['diffs']):+.1%}); "
                  f"{within(d, 0.03):.0%} within ±3% (the acceptance asks all)."]
        if 1 in units and 2 in units and units[1] == units[2] and own[1] != own[2]:  # the second carried the first's
            k = own[2] / own[1]  # what each table's own build speed (latency.unit=build) would have made of them
            u = [(1 + x) * k - 1 for x in r["diffs"]]
            lines[-1] += (f" Both are in the machine's unit ({units[1]:.3f} ms, set by the first table; the second "
                          f"converted its timings to it, measure.unit): the probe ran {k - 1:+.1%} during the second "
                          f"build; in each build's own speed (latency.unit=build) the predictions would differ by "
                          f"{min(u):+.1%} to {max(u):+.1%} (mean {statistics.mean(u):+.1%}), "
                          f"{within([{'error': x} for x in u], 0.03):.0%} within ±3%.")
        elif 1 in units and 2 in units:  # the same predictions in each table's unit (the probe's median over its build)
            k = units[1] / units[2]
            u = [(1 + x) * k - 1 for x in r["diffs"]]
            lines[-1] += (f" The units differ by {1 / k - 1:+.1%} (the probe ran that much faster or slower while the "
                          f"second was built); in each table's unit the predictions differ by {min(u):+.1%} to "
                          f"{max(u):+.1%} (mean {statistics.mean(u):+.1%}), {within([{'error': x} for x in u], 0.03):.0%}"
                          " within ±3%.")
        if r.get("entries"):
            e = r["entries"]
            lines[-1] += (f" Their {e['n']} common block entries (as stored): second / first - 1 median {e['median']:+.2%}, "
                          f"sd {e['sd']:.2%}, {e['beyond_5']} beyond ±5%.")
    return lines + [""]


def _beside_lines(runs: dict[str, dict[int, dict]]) -> list[str]:
    """The model before the table's (``BESIDE``) on each set run's own timings, where the run recorded it (session 27
    on: model 6; session 28 on: model 7)."""
    lines = []
    for key, (name, without, _) in BESIDE.items():
        out = []
        for set_name, by_run in runs.items():
            for run, r in sorted(by_run.items()):
                if all(key in x for x in r["rows"]):
                    rows = [{**x, "error": x[key] / x["measured_ms"] - 1} for x in r["rows"]]
                    bias = tercile_bias(rows)
                    out.append(f"| {set_name} | {run} | {within(rows, 0.05):.0%} / {within(rows, 0.10):.0%} "
                               f"| {max((x['error'] for x in rows), key=abs):+.1%} "
                               f"| {', '.join(f'{b:+.1%}' for b in bias) if bias else ''} |")
        if out:
            lines += ["", f"The same timings predicted by {name} ({without}, refitted on the table's calibration "
                          "timings):", "", "| set | run | ±5% / ±10% | worst error | mean error by size tercile |",
                      "|---|---|---|---|---|", *out]
    return lines


def table_line(t: dict) -> str:
    """A table's JSON line in a sentence: how long it took, its fit, its unit and its held-out error."""
    held = t.get("heldout_errors")
    named = ""
    if held and t.get("calibration_names"):
        off = [f"{n} {e:+.1%}" for n, e in zip(t["calibration_names"], held) if abs(e) > 0.10]
        named = f"; beyond ±10%: {', '.join(off)}" if off else ""
    heldout = (f"held-out errors (each calibration network predicted by a fit made without it) {_range(held)}, "
               f"{within([{'error': e} for e in held], 0.05):.0%} within ±5%{named}" if held else "no held-out check")
    trusted = f" **Untrusted**: {t['distrust']}." if t.get("distrust") else ""
    old = scale_heldout(t) if held else None  # the model before issue 27, on the same timings
    if old:
        trusted += (f" On the same timings the model before issue 27 (scale x sum + overhead) is held-out "
                    f"{_range(old)}, {within([{'error': e} for e in old], 0.05):.0%} within ±5%, mean by size tercile "
                    f"{_terciles(old, t['measured_ms'])}; this model's {_terciles(held, t['measured_ms'])}.")
    counts = t.get("passes") or {}
    if len(counts) > 1:  # recorded from session 22 on (confirmed fastest passes)
        total = sum(counts.values())
        trusted += (" Passes per entry: " + ", ".join(f"{k}: {v} ({v / total:.0%})" for k, v in counts.items())
                    + f" of {total} (more than {min(counts, key=int)}: timed again until a second pass came within "
                    "3% of the fastest).")
    if t.get("small_large"):  # table format 4 (session 23): networks converted by both probes
        trusted += (f" Networks timed against both probes (format 4); MobileNetV3-Small ran at {t['small_large']:.3f} of "
                    "MobileNetV3-Large over the build's network timings.")
    if t.get("block_ms"):  # table format 5 (session 26): entries timed paired with the reference block
        trusted += (f" Entries timed paired with the reference block (format 5), stored at its median over the build, "
                    f"{t['block_ms']:.4f} ms.")
    if t.get("unit_from") == "machine":  # session 27: the unit of the machine's first table, carried (measure.unit)
        trusted += (f" Unit carried from the machine's first table ({t['reference_ms']:.3f} ms); this build's own probe "
                    f"median {t['own_ms']:.3f} ms ({t['own_ms'] / t['reference_ms'] - 1:+.1%}).")
    elif t.get("unit_from") == "this build":
        trusted += " Its unit became the machine's (the first table of this run's store, measure.unit)."
    return (f"Table `{t['name']}`: built in {t['build_s']:.0f} s (0 s when it was already built); calibration "
            f"{fit_text(t)}; "
            f"reference speed {t['reference_ms']:.3f} ms, from "
            f"probe timings whose (max-min)/median spread was {_pct(t.get('probe_spread'))} (a quiet machine: a few %; "
            f"`lut build` warns above 10%); calibration networks' own errors {_range(t.get('calibration_errors'))}; "
            f"{heldout}.{trusted}")


def fit_text(t: dict) -> str:
    """A table line's fitted terms, of this model or an older one (older runs' lines are still rendered)."""
    if t.get("model", 0) >= 4:
        cache = f"{t['cache_bytes'] / 2 ** 20:g} MiB" if t.get("cache_bytes") else "unknown"
        features = f", {t['feature_ms']:.3f} ms per million feature-map elements" if "feature_ms" in t else ""
        if "boundary_ms" in t:  # model 7
            features += f", {t['boundary_ms']:.3f} ms per million elements crossing an entry's boundary"
        if "reload_ms" in t:  # model 8
            l2 = f"{t['l2_bytes'] / 2 ** 20:g} MiB" if t.get("l2_bytes") else "unknown"
            features += f", {t['reload_ms']:.3f} ms per million weights an entry keeps in its core's L2 alone (L2 {l2})"
        if "context_share" in t:  # model 9 (tried in session 28, not adopted)
            features += f", blocks {t['context_share']:.1%} slower in the network than alone"
        return (f"model {t['model']}: call weight {t['call_weight']:.2f}, {t['depthwise_ms']:.3f} ms per "
                f"depthwise-first block, {t['cold_ms']:.3f} ms per million weights read from memory (last-level "
                f"cache {cache}){features}")
    old = f"scale {t['scale']:.3f}, call weight {t.get('call_weight') or 0:.2f}, overhead {t['overhead_ms']:.3f} ms"
    return f"model {t['model']}: {old}" if t.get("model") else old


def _terciles(errors: list[float], measured: list[float]) -> str:
    bias = tercile_bias([{"error": e, "measured_ms": m} for e, m in zip(errors, measured)])
    return ", ".join(f"{b:+.1%}" for b in bias) if bias else "n/a"


def _pct(v) -> str:
    return "not recorded" if v is None else f"{v:.0%}"


def _range(errors) -> str:
    return "not recorded" if not errors else f"{min(errors):+.1%} to {max(errors):+.1%}"


def report(records: list[dict], out: Path) -> None:
    lines = ["# Latency lookup table vs end-to-end measurement (224x224, batch 1, 1 thread)", "",
             f"Machine: {os.cpu_count()} cores, 1 thread per timing. Table defaults (`conf/latency/lut.yaml`): p10 "
             "statistic, 2 shuffled passes (from session 22, more, up to 4, until a second pass lies within 3% of the "
             "fastest: `latency.confirm`), the fixed calibration set (the model of `measure/calibration.py` "
             "named on each table's line, relative-error fit, held out leave-one-out), block timings stored as timed "
             "(table formats 3 and 4; up to model 5 they were converted by the probe around them; from format 5, "
             "session 26, paired with a reference block and stored at its median over the build), whole networks "
             "(calibration and validated) timed paired with the probe and stored at its unit (its median over the build); "
             "from table format 4 (session 23) paired with MobileNetV3-Small too and converted by both probes, weighted "
             "by size (`measure.size_weight`; a row's table format is in its table line). "
             f"Each set is validated {RUNS} times (run 1, run 2); `load` is the 1-minute load average when the run "
             "ended. `python -m benchmarks.latency_lut.latency_lut --results-dir <dir>` resumes or regenerates this file from "
             "`latency_lut.jsonl` (every network's row is there).", ""]
    lines += [f"**Note:** {text}" for text in dict.fromkeys(r["text"] for r in records if r["kind"] == "note")] + [""]
    for backend in dict.fromkeys(r["backend"] for r in records if "backend" in r):
        lines += section(backend, records)
    write_report(out, "\n".join(lines) + "\n")  # keeps the file's "## Reading", which no script writes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--results-dir", default="results")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--repeat", type=int, default=5, help="fresh processes timing V3-Small")
    p.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    p.add_argument("--out", default="latency_lut.md", help="file name of the report in --out-dir")
    p.add_argument("--out-dir", type=Path, default=HERE, help="where the report and its .jsonl go")
    p.add_argument("--tables", type=int, default=2, help="2: build a second table from scratch and compare")
    p.add_argument("--netadapt-per-start", type=int, default=5, help="NetAdapt-shaped networks per reference")
    p.add_argument("--noise-seconds", type=float, default=60, help="host_noise.py's measurement first (0: skip)")
    p.add_argument("--spaces", nargs="+", help="built-in spaces to build and validate (default: all)")
    p.add_argument("--calibration-only", action="store_true",
                   help="build the calibration set only; validated networks' entries are timed when predicted")
    p.add_argument("--passes", type=int, default=2, help="latency.passes of the tables (1: a quick run)")
    p.add_argument("--note", help="a sentence on the host for the report (kept in the .jsonl)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--max-spread", type=float, default=0.05,
                   help="refuse to time when 5 probe timings at the start spread more than this ((max-min)/median)")
    p.add_argument("--sweep-blocks", type=int, default=48,
                   help="and refuse when over 10%% of this many blocks timed twice differ by more than 3%% (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="other random and NetAdapt-shaped networks (0: the usual)")
    p.add_argument("--force", action="store_true", help="time even on a noisy host (the report shows the spread)")
    args = p.parse_args()
    # This run's own store of machine units (measure.unit): its first table sets the unit, its second converts to it,
    # whatever tables built on this machine before it set.
    os.environ["BNECK_UNITS"] = str(Path(args.results_dir).resolve() / "units")
    out = args.out_dir / args.out
    results = out.with_suffix(".jsonl")
    if args.note and not any(r.get("text") == args.note for r in read_jsonl(results)):
        append_jsonl(results, {"kind": "note", "text": args.note})
    if not args.report_only:
        for backend in args.backends:
            check = host_check(backend, args.max_spread, sweep_blocks=args.sweep_blocks)
            swept = (f"; {check['sweep_retimed']} of {check['sweep_blocks']} blocks timed twice differ by more than 3%"
                     if args.sweep_blocks else "")
            print(f"{backend}: five probe timings {check['timings']} ms, spread {check['spread']:.1%}{swept}")
            if not check["quiet"] and not args.force:
                print(f"error: the host is too noisy to validate a table to +-5% (probe spread {check['spread']:.0%}, "
                      f"limit {args.max_spread:.0%}{swept}, limit 10%): rerun when it is quiet, or pass --force",
                      file=sys.stderr)
                raise SystemExit(2)
            bench(backend, args.results_dir, args.n, args.repeat, results, args.tables, args.netadapt_per_start,
                  args.noise_seconds, args.spaces, args.passes, args.calibration_only, args.seed)
            report(read_jsonl(results), out)
    report(read_jsonl(results), out)
    print(out.read_text())
    print(f"wrote {out}; results in {results}")


if __name__ == "__main__":
    main()
