"""What the benchmark scripts share: results kept one JSON line per finished piece (so a killed run resumes),
timing rounds kept the same way, and the report that a script rewrites under a person's "## Reading"."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from core import read_jsonl as read_jsonl  # re-exported: the scripts read their results through this module

READING = "\n## Reading\n"


def append_jsonl(path: Path, row: dict) -> None:
    """One finished piece, on disk before the next starts."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_report(path: Path, text: str) -> str:
    """``text`` written to ``path`` followed by the "## Reading" section of the file it replaces, if it had one (a
    person's reading of the figures, which no script regenerates); returns what was written."""
    old = path.read_text() if path.is_file() else ""
    text += READING + old.split(READING, 1)[1] if READING in old else ""
    path.write_text(text)
    return text


def by_session(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """A benchmark's records grouped by ``(session, backend)``, in the order they were appended."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        out.setdefault((r["session"], r["backend"]), []).append(r)
    return out


def na(v, spec: str = ".1f") -> str:
    """``v`` formatted, or "n/a" for a missing or non-finite figure."""
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def bracket(mean: float, half: float, spec: str, single: str = "") -> str:
    """``mean [mean - half, mean + half]``; ``mean`` followed by ``single`` when there is no interval (one seed)."""
    if math.isnan(half) and single:
        return format(mean, spec) + single
    return f"{mean:{spec}} [{mean - half:{spec}}, {mean + half:{spec}}]"


def split_overrides(known: list, overrides: list[str]) -> tuple[list, list[str]]:
    """An ``nargs="+"`` option's values and the ``key=value`` overrides argparse let it swallow after them."""
    return [a for a in known if "=" not in str(a)], overrides + [str(a) for a in known if "=" in str(a)]


def timed_rounds(path: Path, rounds: int, tag: dict, keys: set[str], time_once: Callable[[object], dict],
                 per_round: int, desc: str = "timing") -> list[dict]:
    """This ``tag``'s rounds in ``path`` (lines holding the tag's values and a timing of every key), brought to
    ``rounds`` by calling ``time_once(bar)`` (-> ``{key: ms}``; ``bar`` gets ``per_round`` updates a round). A
    new round's line is ``tag`` plus ``round`` and ``ms``, appended as soon as it is timed."""
    from tqdm import tqdm

    done = [q for q in read_jsonl(path) if all(q.get(k) == v for k, v in tag.items()) and keys <= set(q["ms"])]
    with tqdm(total=max(0, rounds - len(done)) * per_round, desc=desc, unit="timing") as bar:
        for k in range(len(done), rounds):
            line = {**tag, "round": k, "ms": {a: round(v, 5) for a, v in time_once(bar).items()}}
            append_jsonl(path, line)
            done.append(line)
            bar.write(f"{desc}: round {k + 1} of {rounds} written to {path}")
    return done
