"""``python -m measure.lut build|validate +space=<name> [results_dir=..] [latency.backend=torch] [n=50]``

build     measures every table entry a point of the space can contain (stem, blocks, heads), with a
          progress bar; resumable (present entries are skipped), then fits the calibration on
          ``calibrate`` seeded random points of the space, measured end to end.
validate  measures ``n`` seeded random points end to end, compares with the prediction, writes
          ``validate_<space>_<backend>_t<threads>_<size>.csv`` (arch, predicted_ms, measured_ms, error)
          and a scatter PNG beside the table, and prints the share within +-5% and +-10%.

``space_file=<path.yaml>`` may replace ``+space=`` to use a space YAML outside conf/space.
Writes nowhere but ``results_dir``.
"""
from __future__ import annotations

import csv
import random
import sys
from pathlib import Path
from typing import Sequence

from space import SearchSpace, available_spaces, format_arch
from space.cli import UsageError, compose, require_group, run

from .latency import measure_latency
from .model import TableLatency, latency_model
from .table import LatencyTable, space_entries

COMMANDS = ("build", "validate")
USAGE = "python -m measure.lut build|validate +space=<name> [results_dir=results] [latency.backend=onnxruntime]"


def build(space: SearchSpace, table: LatencyTable, calibrate: int = 8, seed: int = 0, progress: bool = True) -> int:
    """Fill ``table`` for every entry of ``space``, then calibrate; returns entries measured now."""
    from tqdm import tqdm

    entries = space_entries(space, table.input_size)
    with tqdm(total=len(entries), desc=f"{table.name} entries", unit="entry", disable=not progress) as bar:
        measured = table.fill(entries, progress=bar)
    if calibrate and (measured or table.calibration is None):
        rng = random.Random(f"calibrate-{seed}")  # a stream apart from validate's points
        archs = [space.sample(rng) for _ in range(calibrate)]
        with tqdm(total=len(archs), desc="calibration (end to end)", unit="net", disable=not progress) as bar:
            table.calibrate(archs, progress=bar)
    return measured


def validate(space: SearchSpace, table: LatencyTable, n: int = 50, seed: int = 0, progress: bool = True) -> list[dict]:
    """Predicted vs measured end-to-end latency of ``n`` seeded random points of ``space``."""
    from tqdm import tqdm

    rng = random.Random(seed)
    rows = []
    for _ in tqdm(range(n), desc="validate (end to end)", unit="net", disable=not progress):
        arch = space.sample(rng)
        predicted = table.predict(arch)
        measured = measure_latency(arch, backend=table.backend, threads=table.threads, input_size=table.input_size,
                                   batch=table.batch, channels_last=table.channels_last, **table.protocol).value(table.statistic)
        rows.append({"arch": format_arch(arch), "predicted_ms": round(predicted, 4), "measured_ms": round(measured, 4),
                     "error": round((predicted - measured) / measured, 5)})
    return rows


def within(rows: list[dict], tolerance: float) -> float:
    return sum(abs(r["error"]) <= tolerance for r in rows) / len(rows)


def write_report(rows: list[dict], table: LatencyTable, space_name: str) -> tuple[Path, Path]:
    stem = f"validate_{space_name}_{table.path.stem}"
    csv_path = table.path.with_name(stem + ".csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["arch", "predicted_ms", "measured_ms", "error"])
        writer.writeheader()
        writer.writerows(rows)
    png_path = table.path.with_name(stem + ".png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    x = [r["measured_ms"] for r in rows]
    y = [r["predicted_ms"] for r in rows]
    lo, hi = min(x + y) * 0.9, max(x + y) * 1.1
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="exact")
    for tol, style in ((0.05, "--"), (0.10, ":")):
        ax.plot([lo, hi], [lo * (1 + tol), hi * (1 + tol)], "k" + style, lw=0.6)
        ax.plot([lo, hi], [lo * (1 - tol), hi * (1 - tol)], "k" + style, lw=0.6, label=f"±{tol:.0%}")
    ax.scatter(x, y, s=12)
    ax.set(xlabel="measured (ms)", ylabel="predicted (ms)", title=f"{space_name}: {table.name}", xlim=(lo, hi), ylim=(lo, hi))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return csv_path, png_path


def _space(cfg) -> SearchSpace:
    if cfg.get("space_file"):
        return SearchSpace.load(str(cfg.space_file))
    require_group(cfg, "space", available_spaces(), "python -m measure.lut build")
    from omegaconf import OmegaConf

    return SearchSpace.from_config(OmegaConf.to_container(cfg.space, resolve=True))


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        raise UsageError(f"first argument must be one of {', '.join(COMMANDS)}: {USAGE}")
    command, overrides = argv[0], argv[1:]
    cfg = compose("lut", overrides)
    space = _space(cfg)
    model = latency_model(cfg.latency, cfg.results_dir)
    if not isinstance(model, TableLatency):
        raise UsageError("measure.lut works on the lookup table: use latency=lut (the default)")
    table = model.table
    if command == "build":
        measured = build(space, table, calibrate=int(cfg.calibrate), seed=int(cfg.seed))
        cal = table.calibration or {}
        print(f"{len(table.entries)} entries ({measured} measured now) in {table.path}; "
              f"calibration scale {cal.get('scale', 1):.3f} offset {cal.get('offset', 0):.3f} ms")
        return 0
    n = int(cfg.n)
    if n < 1:
        raise UsageError(f"n must be >= 1, got {n}")
    rows = validate(space, table, n=n, seed=int(cfg.seed))
    csv_path, png_path = write_report(rows, table, space.name)
    print(f"{n} architectures: {within(rows, 0.05):.0%} within ±5%, {within(rows, 0.10):.0%} within ±10% "
          f"of measured ({table.name})")
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
