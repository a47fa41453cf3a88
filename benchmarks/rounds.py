"""Timing rounds kept on disk one JSON line each, so a benchmark's timing resumes or adds rounds on rerun."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def timed_rounds(path: Path, rounds: int, tag: dict, keys: set[str], time_once: Callable[[object], dict],
                 per_round: int, desc: str = "timing") -> list[dict]:
    """This ``tag``'s rounds in ``path`` (lines holding the tag's values and a timing of every key), brought to
    ``rounds`` by calling ``time_once(bar)`` (-> ``{key: ms}``; ``bar`` gets ``per_round`` updates a round). A
    new round's line is ``tag`` plus ``round`` and ``ms``, appended as soon as it is timed."""
    from tqdm import tqdm

    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    done = [q for q in lines if all(q.get(k) == v for k, v in tag.items()) and keys <= set(q["ms"])]
    with tqdm(total=max(0, rounds - len(done)) * per_round, desc=desc, unit="timing") as bar:
        for k in range(len(done), rounds):
            line = {**tag, "round": k, "ms": {a: round(v, 5) for a, v in time_once(bar).items()}}
            with open(path, "a") as f:
                f.write(json.dumps(line) + "\n")
            done.append(line)
            bar.write(f"{desc}: round {k + 1} of {rounds} written to {path}")
    return done
