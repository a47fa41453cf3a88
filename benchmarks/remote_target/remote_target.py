"""A table timed on a target over SSH against one timed locally, same machine, same run (issue 28).

The target is this machine reached through a real OpenSSH server on loopback (``tests/ssh_target.py``:
Debian's sshd with throwaway keys, a target interpreter with only numpy and onnxruntime), so both tables
time the same CPU: any difference is what the remote path adds (transport, runner, its process) plus
the host's noise. Builds the local table, then the remote one (``measure.lut.build``, each in its own
results dir), and reports: build time remote / local (goal <= 1.3), the ratio remote / local of every
entry (median, 10th and 90th percentile, 90th percentile of |ratio - 1|) and of the calibrated
predictions for ``--points`` random points of the space (default: ``v3_small_narrow.yaml`` beside this script,
a small space so that two builds fit a few minutes). ``benchmarks/host_noise/host_noise.py``'s measurement
(V3-Small / V3-Large p10 ratio across 20-pair windows) runs before and after: a ratio inside that
noise is "no difference shown".

    BNECK_CALIBRATION_SET=quick python -m benchmarks.remote_target.remote_target [--space v3_small] [--input-size 160] \
        [--points 50] [--noise-s 20]

Appends one JSON line to ``benchmarks/remote_target/remote_target.jsonl`` and rewrites ``benchmarks/remote_target/remote_target.md``
from the last line. Takes several minutes; anything else running on the machine is part of what it measures.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import append_jsonl, read_jsonl
from core import quiet_warnings

quiet_warnings()
from measure import LatencyTable, host_noise, open_target, space_entries  # noqa: E402
from measure import build_table as build  # noqa: E402
from space import SearchSpace  # noqa: E402
from tests import ssh_target  # noqa: E402

HERE = Path(__file__).resolve().parent


QUIET = 0.10  # host-noise ratio spread (before and after) under which a run's timings count as a quiet host's


def quiet(r: dict) -> bool:
    return max(r["noise_before"]["ratio_spread"], r["noise_after"]["ratio_spread"]) <= QUIET


def host_words(r: dict) -> str:
    if quiet(r):
        return "The host was quiet: nothing else ran on it (host noise below)."
    return "The host was shared with other developers' jobs (host noise below)."


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def ratios(remote: list[float], local: list[float]) -> dict:
    r = [a / b for a, b in zip(remote, local)]
    return {"n": len(r), "median": statistics.median(r), "p10": quantile(r, 0.10), "p90": quantile(r, 0.90),
            "abs_dev_p90": quantile([abs(x - 1) for x in r], 0.90)}


def noise(seconds: float) -> dict:
    r = host_noise("onnxruntime", seconds, 20)
    return {k: r[k] for k in ("ratio_spread", "large_spread", "pairs", "load_before")}


def same_process(space, input_size: int, n: int = 6, rounds: int = 8) -> list[dict]:
    """The runner's session and timing loop against the local onnxruntime backend's on the same ONNX
    graph, interleaved in one process: what the code adds, apart from the host's drift between builds."""
    import torch

    from measure import export_onnx, ort_runner, runner_runtime, time_callable

    _, load = runner_runtime("onnxruntime")
    out = []
    for e in random.Random(1).sample(space_entries(space, input_size), n):
        module, shape = e.build().eval(), e.input_shape(1)
        x = torch.randn(*shape)
        local, remote = ort_runner(module, x), load(export_onnx(module, x), list(shape), 1)
        a, b = [], []
        for _ in range(rounds):  # fastest of several short timings each, in turn
            a.append(time_callable(local, 3, 30, 0.05, 1)["p10_ms"])
            b.append(time_callable(remote, 3, 30, 0.05, 1)["p10_ms"])
        out.append({"key": e.key, "local_ms": min(a), "runner_ms": min(b), "ratio": min(b) / min(a)})
    return out


def timed_build(space, table) -> float:
    t0 = time.perf_counter()
    build(space, table, progress=False)
    return time.perf_counter() - t0


def run(space_name: str, input_size: int, points: int, noise_s: float, work: Path) -> dict:
    space = SearchSpace.load(space_name)
    noise_before = noise(noise_s)
    server = ssh_target.start(work / "sshd")
    try:
        python = ssh_target.target_python(work / "target-venv")
        os.environ["BNECK_SSH_CONFIG"] = str(server.ssh_config)
        target = open_target(server.url, str(python))
        target.hello()
        local = LatencyTable(work / "local.json", input_size=input_size)
        remote = LatencyTable(work / "remote.json", input_size=input_size, target=target)
        local_s = timed_build(space, local)
        remote_s = timed_build(space, remote)
    finally:
        server.stop()
    noise_after = noise(noise_s)
    check = same_process(space, input_size)
    keys = sorted(set(local.entries) & set(remote.entries))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(points)]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "space": space.name,
        "calibration_set": os.environ.get("BNECK_CALIBRATION_SET") or "full", "input_size": input_size,
        "entries": len(space_entries(space, input_size)), "timed_entries": len(keys),
        "calibration_networks": len(local.calibration["sums_ms"]),
        "local_build_s": local_s, "remote_build_s": remote_s, "build_ratio": remote_s / local_s,
        "entry_ratio": ratios([remote.entries[k]["p10"] for k in keys], [local.entries[k]["p10"] for k in keys]),
        "prediction_ratio": ratios([remote.predict(a) for a in archs], [local.predict(a) for a in archs]),
        "reference_ms": {"local": local.reference_ms, "remote": remote.reference_ms},
        "calibration": {k: {"scale": t.calibration["scale"], "overhead_ms": t.calibration["overhead_ms"]}
                        for k, t in (("local", local), ("remote", remote))},
        "target": remote.target.describe() | {"url": "ssh://<user>@127.0.0.1:<port>"},
        "noise_before": noise_before, "noise_after": noise_after, "same_process": check,
    }


def report(records: list[dict]) -> str:
    r = records[-1]
    e, p = r["entry_ratio"], r["prediction_ratio"]
    floor = max(r["noise_before"]["ratio_spread"], r["noise_after"]["ratio_spread"])

    def verdict(x: dict) -> str:
        off = abs(x["median"] - 1)
        if off <= floor:
            return (f"the median ratio is {x['median']:.3f}, {off:.1%} from 1, inside the host's noise "
                    f"({floor:.1%}): no difference shown")
        return f"the median ratio is {x['median']:.3f}, {off:.1%} from 1, beyond the host's noise ({floor:.1%})"

    met = "below" if r["build_ratio"] <= 1.3 else "above"
    load = max(r["noise_before"]["load_before"], r["noise_after"]["load_before"])
    row = lambda name, x: (f"| {name} | {x['n']} | {x['median']:.3f} | {x['p10']:.3f} | {x['p90']:.3f} "
                           f"| {x['abs_dev_p90']:.1%} |")
    nb, na, sp = r["noise_before"], r["noise_after"], r["same_process"]
    return "\n".join([
        "# Latency timed on a target over SSH vs timed locally (loopback, same machine, same run)",
        "",
        f"`python -m benchmarks.remote_target.remote_target` ({r['date']} UTC): space `{r['space']}` at {r['input_size']} px, "
        f"onnxruntime, 1 thread, batch 1, table defaults (p10, 2 shuffled passes, probe-converted), "
        f"{r['entries']} entries of the space plus the {r['calibration_networks']} calibration networks "
        f"({r['calibration_set']} set) and their parts. The target is this 2-core VM through Debian's sshd on "
        "127.0.0.1, its interpreter a venv with only "
        "numpy and onnxruntime "
        f"({r['target']['runtime']}). {host_words(r)}",
        "",
        "| build | local s | remote s | remote / local | goal |",
        "|---|---|---|---|---|",
        f"| measure.lut build | {r['local_build_s']:.0f} | {r['remote_build_s']:.0f} | {r['build_ratio']:.2f} "
        f"| <= 1.3 |",
        "",
        "| remote / local | n | median | 10th pct | 90th pct | 90th pct of abs(ratio - 1) |",
        "|---|---|---|---|---|---|",
        row("entries (p10, ms at each table's reference speed)", e),
        row(f"predictions, {p['n']} random points (calibrated)", p),
        "",
        f"Reference speed (probe V3-Large p10): local {r['reference_ms']['local']:.3f} ms, remote "
        f"{r['reference_ms']['remote']:.3f} ms. Calibration scale / overhead: local "
        f"{r['calibration']['local']['scale']:.3f} / {r['calibration']['local']['overhead_ms']:.3f} ms, remote "
        f"{r['calibration']['remote']['scale']:.3f} / {r['calibration']['remote']['overhead_ms']:.3f} ms.",
        "",
        "Host noise (`benchmarks/host_noise/host_noise.py`'s measurement, V3-Small/V3-Large p10 ratio over 20-pair windows): "
        f"ratio spread {nb['ratio_spread']:.1%} before (load {nb['load_before']:.2f}), {na['ratio_spread']:.1%} "
        f"after (load {na['load_before']:.2f}); V3-Large p10 spread {nb['large_spread']:.1%} / "
        f"{na['large_spread']:.1%}.",
        "",
        f"- Same process, same graph: the runner's session and timing loop against the local backend's, "
        f"interleaved ({len(sp)} entries, fastest of 8 timings each): ratios {min(x['ratio'] for x in sp):.3f}-"
        f"{max(x['ratio'] for x in sp):.3f}: in one process the runner times a graph as the local backend does "
        f"to within {max(abs(x['ratio'] - 1) for x in sp):.1%}.",
        f"- Build time: the remote build took {r['build_ratio']:.2f}x the local one, {met} the goal of 1.3 in this "
        + (f"run, on a quiet host (load {load:.1f}, host-noise ratio spread at most {QUIET:.0%})." if quiet(r) else
           f"run; with the host at load {load:.1f} on 2 cores that is no evidence either way for a quiet machine."),
        f"- Entries: {verdict(e)}; 90% of entries are within {e['abs_dev_p90']:.1%} of their local timing.",
        f"- Predictions: {verdict(p)}; 90% of the {p['n']} points are within {p['abs_dev_p90']:.1%}.",
        "",
        f"Every run so far (`benchmarks/remote_target/remote_target.jsonl`, {len(records)}): the entries' median ratio ranged "
        f"{min(x['entry_ratio']['median'] for x in records):.3f}-{max(x['entry_ratio']['median'] for x in records):.3f}"
        f" and the build-time ratio {min(x['build_ratio'] for x in records):.2f}-"
        f"{max(x['build_ratio'] for x in records):.2f} from run to run.",
        "",
        "| date (UTC) | load | host noise (ratio spread) | build remote / local | entries median "
        "| predictions median |",
        "|---|---|---|---|---|---|",
        *[f"| {x['date']} | {max(x['noise_before']['load_before'], x['noise_after']['load_before']):.1f} "
          f"| {max(x['noise_before']['ratio_spread'], x['noise_after']['ratio_spread']):.0%} | {x['build_ratio']:.2f} "
          f"| {x['entry_ratio']['median']:.3f} | {x['prediction_ratio']['median']:.3f} |" for x in records],
        "",
        "Loopback measures the remote path's own cost and fidelity, not a real target's network or CPU: a "
        "Raspberry Pi or a Jetson has its own table (keyed by its machine id), which no local table predicts.",
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=str(HERE / "v3_small_narrow.yaml"), help="a space name or a YAML path")
    ap.add_argument("--input-size", type=int, default=160)
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--noise-s", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md from the .jsonl, time nothing")
    args = ap.parse_args(argv)
    jsonl = args.out / "remote_target.jsonl"
    if args.report_only:
        (args.out / "remote_target.md").write_text(report(read_jsonl(jsonl)))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its sshd, removes its files
    with tempfile.TemporaryDirectory(prefix="bneck-remote-bench-") as work:
        record = run(args.space, args.input_size, args.points, args.noise_s, Path(work))
    append_jsonl(jsonl, record)
    (args.out / "remote_target.md").write_text(report(read_jsonl(jsonl)))
    print(f"build remote/local {record['build_ratio']:.2f}; entries median ratio "
          f"{record['entry_ratio']['median']:.3f}; wrote {args.out / 'remote_target.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
