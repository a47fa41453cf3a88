"""A machine's latency unit, kept across its tables, so a table rebuilt later predicts in the same ms.

A table stores every timing as a ratio to a probe network times its *unit*, the probe's median speed over the
build (``measure.table``, ``measure.probe``). Ratios reproduce between builds; the machine's own speed does not: on
this shared VM the probe ran 7.6% and 10.3% faster while a second table was built half an hour after the first,
so two tables from scratch predicted the same networks 7-10% apart in ms while agreeing within ±3% for 94-96% of
them in each one's unit (benchmarks/latency_lut/latency_lut_2026-12-07i.md, session 26).

So the first table of a machine, backend, threads and input size to settle its unit records it here, outside any
results folder, and every later table of that kind converts its ratios to that unit instead of to its own build's
speed: its predictions are in *ms at the speed the machine had when its first table was built*. Each table keeps its
own build's speed beside the unit (``own_ms``), so a report can say how far the machine has moved since.
``latency.unit=build`` keeps the older behaviour (each table in its own build's unit), and deleting the file named in
the table's ``reference.unit.path`` starts the machine's unit afresh.

Where: ``$BNECK_UNITS``, else ``$XDG_DATA_HOME/bneck/units``, else ``~/.local/share/bneck/units``, one file per
``<machine>/<table name>.json``.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from core.files import write_atomic

from .latency import MeasureError

MODES = ("machine", "build")
ENV = "BNECK_UNITS"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise MeasureError(f"unknown latency.unit {mode!r}: use latency.unit=machine (one unit per machine, kept "
                           f"across its tables) or latency.unit=build (each table its own build's speed)")
    return mode


def store() -> Path:
    """The folder of machine units (module note)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "bneck" / "units"


def unit_path(machine: str, name: str) -> Path:
    """The file of ``machine``'s unit for tables named ``name`` (``onnxruntime_t1_224``)."""
    return store() / machine / f"{name}.json"


def read(path: Path, kind: dict) -> dict | None:
    """The unit recorded at ``path`` if it was set by tables of ``kind`` (probe and its calls per timing); None when
    there is none, or it was set for another probe (a unit of another figure carried here would be a wrong scale)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise MeasureError(f"machine latency unit {path} is unreadable ({e}): delete it (the next table sets it "
                           f"again) or pass latency.unit=build") from None
    if any(data.get(k) != v for k, v in kind.items()) or not isinstance(data.get("ms"), (int, float)):
        return None
    return data


def claim(path: Path, kind: dict, ms: float, table: Path) -> tuple[dict, bool]:
    """The machine's unit: the one recorded at ``path``, else ``ms`` recorded there now (first table wins, under a
    lock, so two builds settling at once agree). A record of another ``kind`` is replaced: tables settled in it keep
    their own copy of their unit. Returns (record, whether this call set it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = read(path, kind)
            if found is not None:
                return found, False
            record = {**kind, "ms": ms, "set": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "table": str(table)}
            write_atomic(path, json.dumps(record, indent=1))
            return record, True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
