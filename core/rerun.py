"""The check that a rerun asks for the run its folder holds (a study, a supernet, a NetAdapt run).

Each keeps the settings it was started with as nested JSON-able dicts; a rerun's are compared key by
key once flattened (``train.lr``), whole floats as ints so that 2.0 read back from JSON equals 2.
Each package words its own refusal from the keys found here.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable


def flat(d: dict, prefix: str = "") -> dict:
    """{"train": {"epochs": 2.0}} -> {"train.epochs": 2}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = int(v) if isinstance(v, float) and math.isfinite(v) and v == int(v) else v
    return out


def differences(theirs: dict, ours: dict, *, ignore: Iterable[str] = (),
                order: Callable[[str], object] | None = None) -> list[str]:
    """The flattened keys whose values differ, sorted by ``order`` (default: by name). A key one side lacks
    counts as null there (settings added since a run started are null when unused). Top-level keys in
    ``ignore`` are not compared."""
    skip = set(ignore)
    a = flat({k: v for k, v in theirs.items() if k not in skip})
    b = flat({k: v for k, v in ours.items() if k not in skip})
    return sorted((k for k in set(a) | set(b) if a.get(k) != b.get(k)), key=order)


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with "..." where it was cut, for one-line messages."""
    return text if len(text) <= width else text[:width - 3] + "..."

