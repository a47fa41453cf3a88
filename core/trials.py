"""A finished trial's architecture, read from its study's ``trials.csv`` (written by ``search/results.py``)
by the commands that start from a trial: ``netadapt`` (start=<study>:<trial>) and the supernet export, and
the trial rows ``search.fidelity`` ranks."""
from __future__ import annotations

import csv
from pathlib import Path


def trial_rows(table: Path, keys: tuple[str, ...] = ("number", "state", "arch", "top1")) -> list[dict]:
    """Every row of ``table`` (a study's trials.csv), only ``keys`` of each (absent ones None)."""
    with open(table, newline="") as f:
        return [{k: r.get(k) for k in keys} for r in csv.DictReader(f)]


def trial_arch_text(table: Path, number: int, error: type[Exception], *, unfinished: str, missing: str = "") -> str:
    """The arch string of COMPLETE trial ``number`` in ``table``. Raises ``error``: for a trial not COMPLETE
    (``unfinished``: what to do instead) or absent (``missing``: appended to the message)."""
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("number") not in (None, "") and int(float(row["number"])) == number:
                if row.get("state") != "COMPLETE" or not row.get("arch"):
                    raise error(f"trial {number} of {table.parent} is {row.get('state') or 'unfinished'}: "
                                f"{unfinished}")
                return row["arch"]
    raise error(f"{table} has no trial {number}{missing}")
