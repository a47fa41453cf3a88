"""How reproducible are a network's converted timing and a table's unit? (issue 27: the timings a table is
validated against moved by a median 3-6% between two runs on a quiet host, and two tables built apart disagreed.)

Protocols. Per protocol (speed window: how many of the last probe timings gave the speed; repeats: calls per probe
timing) one table of its own. Since table format 3 (issue 27) entries are not converted and networks are timed paired
with the probe, so the window is gone and a rerun compares the repeats alone; the rows in ``probe_protocol.jsonl``
were timed with the window. Each table: the same ``--n`` seeded random ``v3_large`` networks timed end to end twice by each, the
runs interleaved (A1, B1, A2, B2) so that both protocols see the same spells of the host. Reported per protocol:
the run-to-run change of each network, converted to the table's unit and as timed. Beside them, not a table's
protocol yet: each network timed *paired* with the probe, 10 calls of one then 10 of the other, 8 times, its
figure the median of the 8 ratios of their p10s (unit-free: the probe is timed seconds apart from nothing it
converts); "as timed" is then the network's own p10 over its 80 calls.

The unit. The probe timed back to back for ``--unit-seconds``; every start in that sequence is a table's unit as
one of two rules would set it there: the median of 5 timings in a row, or (``measure.probe``) the same retried up to
3 times while the 5 spread by more than 5%, the quietest set kept. Reported: how far those units lie from the
median of the whole sequence (50th, 90th, 99th percentile and worst), beside the median of 30 and of 120 in a row.
Cut into stretches of a build's length, the same sequence gives the units two tables built apart would settle
(``--unit-seconds 900 --no-protocols`` for a quarter of an hour of them; ``--unit-backend torch`` for eager torch).

    taskset -c 1 python -m benchmarks.latency_lut.probe_protocol [--n 16] [--unit-seconds 150] [--unit-backend torch]

Appends one JSON line per run of the script to ``probe_protocol.jsonl`` and rewrites ``probe_protocol.md``.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import append_jsonl, na, read_jsonl
from core import quiet_warnings

quiet_warnings()
from measure import LatencyTable, SpeedProbe, host_noise, make_runner  # noqa: E402
from space import V3_LARGE, load_space  # noqa: E402

HERE = Path(__file__).resolve().parent
PROTOCOLS = {"20 repeats (the default)": 20, "50 repeats": 50}
PAIRED = "paired with the probe, 10 + 10 calls x 8"
BUILD_S = 120.0  # about a table build's length here (onnxruntime 106-116 s, torch 182-209 s in latency_lut.md)


def changes(a: list[dict], b: list[dict], key: str) -> dict:
    d = [abs(y[key] / x[key] - 1) for x, y in zip(a, b)]
    return {"median": statistics.median(d), "max": max(d), "within_3": sum(v <= 0.03 for v in d) / len(d)}


def _p10(run, calls: int) -> float:
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[max(0, calls // 10 - 1)] * 1e3


def paired(run, probe, pairs: int = 8, calls: int = 10) -> dict:
    """The network's p10 over the probe's, ``calls`` of each in turn, ``pairs`` times: the median ratio, and the
    network's own p10 over all its calls (as timed)."""
    ratios, own = [], []
    for _ in range(pairs):
        a, b = _p10(run, calls), _p10(probe, calls)
        ratios.append(a / b)
        own.append(a)
    return {"ms": statistics.median(ratios), "as_timed_ms": min(own)}


def run(n: int, work: Path) -> dict:
    rng = random.Random(0)
    archs = [load_space("v3_large").sample(rng) for _ in range(n)]
    noise = host_noise("onnxruntime", 20, 20)
    tables = {k: LatencyTable(work / f"{i}.json", probe_repeats=r) for i, (k, r) in enumerate(PROTOCOLS.items())}
    runs: dict[str, list] = {k: [] for k in [*PROTOCOLS, PAIRED]}
    shape = (1, 3, 224, 224)
    probe = make_runner(V3_LARGE, backend="onnxruntime", shape=shape, threads=1)
    nets = [make_runner(a, backend="onnxruntime", shape=shape, threads=1) for a in archs]
    for _ in range(2):
        for k, t in tables.items():
            runs[k].append(t.measure_networks(archs))
        runs[PAIRED].append([paired(r, probe) for r in nets])
    return {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "n": n,
            "noise": {k: noise[k] for k in ("ratio_within_5", "ratio_spread", "load_before")},
            "protocols": {k: {"converted": changes(*runs[k], "ms"), "as_timed": changes(*runs[k], "as_timed_ms"),
                              "reference_ms": tables[k].reference_ms if k in tables else None} for k in runs}}


def spread(x: list[float]) -> float:
    return (max(x) - min(x)) / statistics.median(x)


def unit_rules(ms: list[float], tries: int = 3, quiet: float = 0.05) -> dict[str, list[float]]:
    """|unit / median of ``ms`` - 1| for a unit set at every start of ``ms`` by each rule (module note)."""
    mid = statistics.median(ms)
    out: dict[str, list[float]] = {"5 in a row": [], "5 in a row, retried while spread > 5%": [],
                                   "30 in a row": [], "120 in a row": []}
    for i in range(len(ms) - 5 * tries):
        best = None
        for k in range(tries):
            x = ms[i + 5 * k:i + 5 * k + 5]
            best = x if best is None or spread(x) < spread(best) else best
            if spread(x) <= quiet:
                break
        out["5 in a row"].append(abs(statistics.median(ms[i:i + 5]) / mid - 1))
        out["5 in a row, retried while spread > 5%"].append(abs(statistics.median(best) / mid - 1))
    for n in (30, 120):
        out[f"{n} in a row"] = [abs(statistics.median(ms[i:i + n]) / mid - 1) for i in range(len(ms) - n)]
    return out


def unit_run(seconds: float, backend: str = "onnxruntime") -> dict:
    probe = SpeedProbe(backend=backend, threads=1, input_size=224, batch=1, channels_last=False)
    ms, at, t0 = [], [], time.monotonic()
    while (t := time.monotonic() - t0) < seconds:
        ms.append(round(probe.time(), 5))
        at.append(round(t, 1))
    return {"kind": "unit", "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "seconds": seconds,
            "backend": backend, "ms": ms, "t": at}


def build_units(ms: list[float], at: list[float], build_s: float) -> list[float]:
    """The unit a build of ``build_s`` seconds would settle in each whole such stretch of the sequence: the median
    of the probe timings in it (``measure.table``'s rule)."""
    stretches: dict[int, list[float]] = {}
    for m, t in zip(ms, at):
        stretches.setdefault(int(t // build_s), []).append(m)
    whole = int(at[-1] // build_s) if at else 0  # the last stretch is cut short by the end of the sequence
    return [statistics.median(v) for k, v in sorted(stretches.items()) if k < whole]


def unit_pairs(units: list[float]) -> list[float]:
    """|second / first - 1| for every two builds that do not follow each other (tables built apart)."""
    return [abs(units[j] / units[i] - 1) for i in range(len(units)) for j in range(i + 2, len(units))]


def sign_p(k: int, n: int) -> float:
    """One-sided sign test: the chance of k or more of n runs lower when neither protocol is."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def sign(k: int, n: int) -> str:
    return f"{k} of {n} runs (one-sided sign test p = {sign_p(k, n):.3f})"


def quantile(d: list[float], q: float) -> float:
    """The ``q`` quantile of ``d`` (nearest rank, no interpolation); shared with ``size_probe``."""
    return sorted(d)[min(len(d) - 1, int(q * len(d)))]


def report(records: list[dict]) -> str:
    lines = ["# Probe protocol: how much a network's timing moves between two runs", "",
             "`python -m benchmarks.latency_lut.probe_protocol` (module docstring): the same seeded random `v3_large` "
             "networks timed end to end twice per protocol, onnxruntime, 1 thread, the runs interleaved. |change| is "
             "|run 2 / run 1 - 1| per network. Host noise: `measure.lut noise`'s figures, 20 s before the run.", "",
             "| date (UTC) | networks | host: ratio within ±5% (spread), load | protocol | converted: median / max "
             "abs change, within 3% | as timed: median / max | reference ms |", "|---|---|---|---|---|---|---|"]
    for r in (x for x in records if x.get("kind") != "unit"):
        nz = r["noise"]
        for k, p in r["protocols"].items():
            c, a = p["converted"], p["as_timed"]
            lines.append(f"| {r['date']} | {r['n']} | {nz['ratio_within_5']:.0%} ({nz['ratio_spread']:.1%}), "
                         f"{nz['load_before']:.1f} | {k} | {c['median']:.1%} / {c['max']:.1%}, {c['within_3']:.0%} "
                         f"| {a['median']:.1%} / {a['max']:.1%} | {na(p['reference_ms'], '.3f')} |")
    runs = [x for x in records if x.get("kind") != "unit"]
    def median(x: dict, i: int) -> float:  # the i-th protocol of a run (a run's own names: older runs had a window)
        return x["protocols"][[k for k in x["protocols"] if k != PAIRED][i]]["converted"]["median"]

    lower = sum(median(x, 1) < median(x, 0) for x in runs)
    lines += ["", f"The second protocol's median |change| (converted) was lower in {sign(lower, len(runs))}: "
              + ("shown lower." if sign_p(lower, len(runs)) < 0.05 else "no difference shown; the default stays.")]
    with_paired = [x for x in runs if PAIRED in x["protocols"]]
    if with_paired:
        lo = sum(x["protocols"][PAIRED]["converted"]["median"] < median(x, 0) for x in with_paired)
        lines += ["", f"Paired with the probe, the median |change| was lower than the default's in "
                  f"{sign(lo, len(with_paired))}: " + ("shown lower." if sign_p(lo, len(with_paired)) < 0.05
                                                      else "no difference shown yet.")]
    lines.append("")
    units = [x for x in records if x.get("kind") == "unit"]
    if units:
        lines += ["## The unit", "", "A table's unit set at each start of a sequence of probe timings (module note), "
                  "against the median of the whole sequence: |unit / median - 1|.", "",
                  "| date (UTC) | backend | s | probe timings | rule | 50th pct | 90th pct | 99th pct | worst |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for u in units:
            for rule, d in unit_rules(u["ms"]).items():
                if not d:  # a sequence shorter than the rule's run of timings
                    continue
                lines.append(f"| {u['date']} | {u.get('backend', 'onnxruntime')} | {u['seconds']:.0f} | {len(u['ms'])} | "
                             f"{rule} | {quantile(d, .5):.1%} | {quantile(d, .9):.1%} | {quantile(d, .99):.1%} | {max(d):.1%} |")
        lines += ["", "Two tables' units are two such draws: their ratio is off by up to the sum of two such "
                  "deviations, and every prediction of one table differs from the other's by that ratio."]
        timed = [u for u in units if u.get("t")]
        if timed:
            lines += ["", "## Two builds' units", "", f"The same sequences cut into stretches of {BUILD_S:.0f} s, a "
                      "build's length: each stretch's median is the unit a build there would settle (`measure.table`). "
                      "|change| is between every two stretches that do not follow each other: what two tables built "
                      "apart inherit, whatever their entries.", "",
                      "| date (UTC) | backend | s | stretches | units (ms) | abs change: median / worst | within ±3% |",
                      "|---|---|---|---|---|---|---|"]
            for u in timed:
                built = build_units(u["ms"], u["t"], BUILD_S)
                d = unit_pairs(built)
                span = f"{min(built):.3f}-{max(built):.3f}" if built else "n/a"
                change = f"{statistics.median(d):.1%} / {max(d):.1%} | {sum(x <= 0.03 for x in d) / len(d):.0%}" \
                    if d else "n/a | n/a"
                lines.append(f"| {u['date']} | {u.get('backend', 'onnxruntime')} | {u['seconds']:.0f} | {len(built)} | "
                             f"{span} | {change} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--unit-seconds", type=float, default=150, help="the unit study's probe sequence (0: skip)")
    ap.add_argument("--unit-backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    ap.add_argument("--protocols", action=argparse.BooleanOptionalAction, default=True, help="the protocol study")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    jsonl = args.out / "probe_protocol.jsonl"
    if args.protocols:
        with tempfile.TemporaryDirectory(prefix="bneck-probe-") as work:
            append_jsonl(jsonl, run(args.n, Path(work)))
    if args.unit_seconds > 0:
        append_jsonl(jsonl, unit_run(args.unit_seconds, args.unit_backend))
    (args.out / "probe_protocol.md").write_text(report(read_jsonl(jsonl)))
    print(f"wrote {args.out / 'probe_protocol.md'}")
    return 0


if __name__ == "__main__":
    from core import run as run_cli

    run_cli(main)
