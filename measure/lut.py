"""``python -m measure.lut build|validate +space=<name> [results_dir=..] [latency.backend=torch] [n=50]``
``python -m measure.lut noise [latency.backend=onnxruntime] [seconds=60] [sweep_blocks=48]``

build     times every table entry a point of the space can contain (stem, blocks, heads) and the
          calibration networks (the fixed set of ``measure.calibration``, the same for every space)
          with their entries, in the same shuffled sweeps (``latency.passes`` of them), with a
          progress bar; resumable (present timings are kept); then fits the calibration (call weight,
          depthwise-first blocks, weights read from memory: ``measure.calibration``) when it is missing or
          any of its timings is new, and
          prints its held-out error (each calibration network predicted by a fit made without it),
          naming the networks missed by more than 10%, and how many entries were timed again to confirm
          their fastest pass. A table built on a busy machine (the probe's 5 timings at the start spread
          over 10%, or over 10% of entries timed again) or missing held-out networks so is marked
          untrusted: searches and NetAdapt refuse it (exit 2) unless ``latency.accept_untrusted=true``.
validate  measures networks end to end (as the table's entries: fastest of ``latency.passes``
          shuffled sweeps), compares with the prediction, writes
          ``validate_<space>[_<set>]_<backend>_t<threads>_<size>.csv`` (arch, predicted_ms, measured_ms,
          error, measured_raw_ms: before conversion to the table's reference speed, set, probes_ratio:
          V3-Small / V3-Large around the network) and a scatter PNG beside the table, and prints per set
          the share within +-5% and +-10% and the mean signed error per size tercile (a model biased by
          size shows one sign per tercile), and the probes' ratio while validating beside the build's. ``set=random``:
          ``n`` seeded random points of the space; ``references``: both references at x0.35, x0.5, x0.75, x1
          and x1.25; ``netadapt``: the final network of every run under ``results_dir/netadapt``;
          ``all``: the three.
noise     times two fixed networks in turn for ``seconds``, then ``sweep_blocks`` fixed blocks in two shuffled
          passes as a build does, and says whether the host is quiet enough to build and validate a table
          to ±5% now: the networks' ratio held, and at most 10% of the blocks would be timed again
          (``measure.noise``); needs no space, writes nothing.

``space_file=<path.yaml>`` may replace ``+space=`` to use a space YAML outside conf/space.
Writes nowhere but ``results_dir``.
"""
from __future__ import annotations

import csv
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from core.cli import Command, UsageError, compose, require_group, run
from core.files import write_atomic
from space import V3_LARGE, V3_SMALL, ArchSpec, SearchSpace, available_spaces, format_arch, parse_arch, scale_width

from . import calibration as calib
from .entries import arch_entries, call_entries, call_entry, network_entry, space_entries
from .model import TableLatency, describe_fit, latency_model
from .probe import PROBE
from .table import LatencyTable, busy_build

COMMANDS = ("build", "validate", "noise")
USAGE = "python -m measure.lut build|validate|noise +space=<name> [results_dir=results] [latency.backend=onnxruntime]"
CLI = Command("python -m measure.lut", "lut", "build|validate|noise +space=<name> [key=value ...]",
              "build: time the latency lookup table of a space; validate: compare its predictions with measurements; "
              "noise: is this host quiet enough to do either to ±5% now (no space needed)?",
              groups=("space", "latency"), plus=("space",), positionals=COMMANDS)


def build(space: SearchSpace, table: LatencyTable, progress: bool = True) -> int:
    """Fill ``table`` for every entry of ``space`` and the calibration networks (their entries and
    themselves end to end) in the same sweeps, then fit the calibration; returns how many were timed now."""
    from tqdm import tqdm

    archs = table.calibration_archs
    cal_parts = [e for a in archs for e in arch_entries(a, table.input_size)]
    nets = [network_entry(a, table.input_size) for a in archs]
    cal_parts += call_entries(cal_parts) + [call_entry(3, table.input_size)]
    own = space_entries(space, table.input_size)
    # the empty graphs at every input shape of the space too: a table that may not measure predicts any point
    parts = list({e.key: e for e in own + call_entries(own) + cal_parts}.values())
    stale = bool(table.missing(cal_parts + nets))  # the fit rests on timings this build adds: refit
    with tqdm(total=(len(parts) + len(nets)) * table.passes, desc=f"{table.name} x {table.passes} passes",
              unit="timing", disable=not progress) as bar:
        timed = table.fill(parts + nets, progress=bar)
    if stale or table.calibration_fit() is None:
        table.calibrate()
    return timed


SETS = ("random", "references", "netadapt", "all")
REFERENCE_WIDTHS = (0.35, 0.5, 0.75, 1, 1.25)  # the widths issue 27's acceptance names
BUSY = calib.BUSY


def heldout_line(cal: dict) -> str:
    """The held-out error of a fit in one line (``measure.calibration.heldout``)."""
    held = cal.get("heldout_errors")
    if not held:
        return (f"held-out error: not checked ({len(cal['errors'])} calibration networks, fewer than "
                f"{calib.MIN_HELDOUT})")
    rows = [{"error": e} for e in held]
    return (f"held-out error (each of {len(held)} calibration networks predicted by a fit made without it): "
            f"{within(rows, 0.05):.0%} within ±5%, {within(rows, 0.10):.0%} within ±10%, "
            f"mean {sum(held) / len(held):+.1%}, worst {max(held, key=abs):+.1%}")


def build_warnings(path, spread: float, cal: dict, busy: str | None = None) -> list[str]:
    """What ``build`` warns about, one line each: a busy machine (the probe's timings spread at the start; entries
    timed again during the build, ``busy``: ``measure.table.busy_build``), and, apart from it, calibration networks
    the fit misses by more than 10% when it is made without them (held-out: noise in their timing, or the model not
    fitting this machine: a rebuild on a quiet machine helps only the first)."""
    out = []
    if spread > BUSY:
        out.append(f"warning: the machine was busy (the probe's timings spread {spread:.1%}, over {BUSY:.0%}): delete "
                   f"{path} and build it again on a quiet machine")
    if busy:
        out.append(f"warning: the machine was busy during the build: {busy}; delete {path} and build it again on a "
                   f"quiet machine")
    off = calib.missed(cal)
    if off:
        out.append(f"warning: held out of the fit, {len(off)} of {len(cal['heldout_errors'])} calibration "
                   f"networks are missed by more than {calib.HELDOUT_LIMIT:.0%}: {', '.join(off)}; "
                   "`python -m measure.lut validate` with the same arguments shows the error on the networks you "
                   "will rank")
    return out


def validation_archs(which: str, space: SearchSpace, n: int, seed: int, results_dir) -> list[tuple[str, ArchSpec]]:
    """(set name, network) pairs of ``which`` (see the module note), in a fixed order."""
    out = []
    if which in ("random", "all"):
        rng = random.Random(seed)
        out += [("random", space.sample(rng)) for _ in range(n)]
    if which in ("references", "all"):
        out += [("references", scale_width(ref, m) if m != 1 else ref)
                for ref in (V3_SMALL, V3_LARGE) for m in REFERENCE_WIDTHS]
    if which in ("netadapt", "all"):
        finals = sorted(Path(results_dir).glob("netadapt/*/final.json"))
        if not finals and which == "netadapt":
            raise UsageError(f"no NetAdapt run under {Path(results_dir) / 'netadapt'} has a final.json: run "
                             f"`python -m netadapt.run` first or pass another results_dir")
        out += [("netadapt", parse_arch(p)) for p in finals]
    return out


def validate(space: SearchSpace, table: LatencyTable, n: int = 50, seed: int = 0, progress: bool = True,
             which: str = "random", results_dir="results") -> list[dict]:
    """Predicted vs measured end-to-end latency of the networks of set ``which``."""
    return compare(table, validation_archs(which, space, n, seed, results_dir), progress)


def compare(table: LatencyTable, named: list[tuple[str, ArchSpec]], progress: bool = True) -> list[dict]:
    """Predicted vs measured end-to-end latency of (set name, network) pairs: one row per network."""
    from tqdm import tqdm

    archs = [a for _, a in named]
    n = len(archs)
    predicted = [table.predict(a) for a in archs]
    # Timed as the table's entries are: the fastest of `passes` shuffled sweeps, at the reference speed.
    with tqdm(total=n * table.passes, desc="validate (end to end)", unit="timing", disable=not progress) as bar:
        measured = table.measure_networks(archs, progress=bar)
    return [{"arch": format_arch(a), "predicted_ms": round(p, 4), "measured_ms": round(m["ms"], 4),
             "error": round((p - m["ms"]) / m["ms"], 5), "measured_raw_ms": round(m["as_timed_ms"], 4), "set": s,
             "probes_ratio": round(m["probes_ratio"], 5) if "probes_ratio" in m else ""}
            for (s, a), p, m in zip(named, predicted, measured)]


def within(rows: list[dict], tolerance: float) -> float:
    return sum(abs(r["error"]) <= tolerance for r in rows) / len(rows)


def tercile_bias(rows: list[dict]) -> list[float] | None:
    """Mean signed error of the smallest, middle and largest third of ``rows`` by measured latency (None under 3
    rows): the size bias that shares within ±5%/±10% do not show."""
    if len(rows) < 3:
        return None
    ranked = sorted(rows, key=lambda r: r["measured_ms"])
    cuts = [round(i * len(ranked) / 3) for i in range(4)]
    return [sum(r["error"] for r in ranked[a:b]) / (b - a) for a, b in zip(cuts, cuts[1:])]


def tercile_text(rows: list[dict]) -> str:
    bias = tercile_bias(rows)
    return "" if bias is None else ("; mean error by size tercile (small, middle, large): "
                                    + ", ".join(f"{b:+.1%}" for b in bias))


def host_state(rows: list[dict], built: float | None) -> str | None:
    """A line comparing the two probes' ratio (V3-Small / V3-Large) around the validated networks with the
    table's over its build, or None without both: on a shared host that ratio moves with the host's state,
    and small networks move with it, so a validation in another state than the build's is read with that."""
    ratios = sorted(r["probes_ratio"] for r in rows if r.get("probes_ratio"))
    if not ratios or not built:
        return None
    mid = statistics.median(ratios)
    return (f"the probes' ratio (V3-Small / V3-Large) while validating: median {mid:.3f} ({ratios[0]:.3f}-"
            f"{ratios[-1]:.3f}), {mid / built - 1:+.1%} from the table's {built:.3f} over its build (the host's "
            f"state: small networks move with V3-Small, large ones with V3-Large)")


def write_report(rows: list[dict], table: LatencyTable, space_name: str, which: str = "random") -> tuple[Path, Path]:
    stem = f"validate_{space_name}" + ("" if which == "random" else f"_{which}") + f"_{table.path.stem}"
    csv_path = table.path.with_name(stem + ".csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["arch", "predicted_ms", "measured_ms", "error", "measured_raw_ms",
                                               "set", "probes_ratio"])
        writer.writeheader()
        writer.writerows(rows)
    png_path = table.path.with_name(stem + ".png")
    from plots import ValidationInfo, draw_validation

    info = ValidationInfo(f"{space_name}: {table.name}", tuple(r["measured_ms"] for r in rows),
                          tuple(r["predicted_ms"] for r in rows))
    write_atomic(png_path, draw_validation(info))
    return csv_path, png_path


def unit_line(ref: dict) -> str:
    """Where a table's unit came from (``measure.unit``), in a sentence for the build's output."""
    where, own = ref.get("unit") or {}, ref.get("own_ms")
    if where.get("from") == "machine":
        moved = own / ref["ms"] - 1
        return (f"unit: the machine's, set {where['set']} by {where['table']} ({where['path']}); the probe ran "
                f"{abs(moved):.1%} {'slower' if moved > 0 else 'faster'} during this build than then, and its timings "
                f"are converted to that unit, so tables built at other times predict the same ms "
                f"(latency.unit=build: this build's own)")
    if where.get("from") == "this build":
        return (f"unit: this build's, now this machine's for later tables of this kind ({where['path']}: delete it "
                f"to start afresh)")
    return "unit: this build's own" + (" (latency.unit=build)" if where else "")


def _space(cfg) -> SearchSpace:
    if cfg.get("space_file"):
        return SearchSpace.load(str(cfg.space_file))
    require_group(cfg, "space", available_spaces(), "python -m measure.lut build")
    from core.settings import plain

    return SearchSpace.from_config(plain(cfg.space))


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        raise UsageError(f"first argument must be one of {', '.join(COMMANDS)}: {USAGE}")
    command, overrides = argv[0], argv[1:]
    cfg = compose("lut", overrides)
    if command == "noise":
        from .noise import host_noise, sweep, verdict

        backend = str(cfg.latency.backend)
        found = host_noise(backend, float(cfg.seconds))
        if int(cfg.sweep_blocks):
            found.update(sweep(backend, int(cfg.sweep_blocks)))
        print(verdict(found))
        return 0
    space = _space(cfg)
    model = latency_model(cfg.latency, cfg.results_dir)
    if not isinstance(model, TableLatency):
        raise UsageError("measure.lut works on the lookup table: use latency=lut (the default)")
    table = model.table
    if command == "build":
        timed = build(space, table)
        cal = table.calibration
        print(f"{len(space_entries(space, table.input_size))} entries and {len(cal['sums_ms'])} calibration networks "
              f"({timed} timed now) in {table.path}; calibration (model {cal['model']}): {describe_fit(cal)}; "
              f"reference speed: probe {PROBE} {table.reference_ms:.3f} ms, median of "
              f"{len(table.reference.get('timings', [0]))} timings "
              f"(spread {table.reference.get('spread', float('nan')):.1%})")
        print(unit_line(table.reference))
        print(heldout_line(cal))
        retimed = table.retimed()
        if retimed:
            print(f"{retimed[0]} of {retimed[1]} entries ({retimed[0] / retimed[1]:.0%}) timed again to confirm their "
                  f"fastest pass (a quiet machine: a few %; over {calib.RETIMED:.0%}: a busy one)")
        busy = busy_build(retimed, table.passes, table.confirm)
        for line in build_warnings(table.path, table.reference.get("spread", 0), cal, busy):
            print(line)
        why = table.distrust()
        if why:
            print(f"untrusted: {why}. Searches and NetAdapt refuse this table (exit 2) until it is deleted and built "
                  f"again on a quiet machine, or run with latency.accept_untrusted=true; validate still checks it")
        return 0
    n = int(cfg.n)
    if n < 1:
        raise UsageError(f"n must be >= 1, got {n}")
    if table.calibration_fit() is None:  # an uncalibrated sum misses the per-network overhead: a useless check
        raise UsageError(f"latency table {table.path} is not calibrated: run `python -m measure.lut build` with the "
                         f"same arguments first")
    which = str(cfg.get("set", "random"))
    rows = validate(space, table, n=n, seed=int(cfg.seed), which=which, results_dir=cfg.results_dir)
    csv_path, png_path = write_report(rows, table, space.name, which)
    for name in SETS[:3]:
        some = [r for r in rows if r["set"] == name]
        if some:
            print(f"{name}: {len(some)} architectures: {within(some, 0.05):.0%} within ±5%, "
                  f"{within(some, 0.10):.0%} within ±10% of measured ({table.name}){tercile_text(some)}")
    speed = [r["measured_ms"] / r["measured_raw_ms"] for r in rows]  # < 1: slower than the table's reference
    print(f"the machine ran at {min(speed):.2f}-{max(speed):.2f}x the table's reference speed (probe "
          f"{PROBE}, {table.reference_ms:.3f} ms at reference); measured_ms is converted to it")
    state = host_state(rows, table.small_large)
    if state:
        print(state)
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
