"""The networks ``search.fidelity`` measures and the trainings it shares between workers.

Networks: a seeded sample of the space with its reference first, or the best finished trials of a study
by holdout top-1 (``top1``; the test column is never read).

Trainings: one job per (network, budget, seed), plus one supernet score per network with
``accuracy=supernet``. Workers started on one folder share them through two append-only files, both
written under one exclusive ``flock`` (``claims.lock``): ``claims.jsonl`` (a worker took a job) and
``fidelity.jsonl`` (a job's result, with its settings). A worker holds a lock of its own for its whole
life (``search.storage.Journal``'s worker locks), so a claim whose worker died -- killed, crashed --
is free again at once, with no timeout; a finished job is never run again.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError
from core.files import read_jsonl
from core.trials import trial_rows
from space import REFERENCES, ArchSpec, SearchSpace, format_arch, parse_arch

from .storage import Journal

RESULTS, CLAIMS = "fidelity.jsonl", "claims.jsonl"


@dataclass(frozen=True)
class Network:
    name: str  # 'V3-Small', 'sample03', 'trial 12'
    arch: str  # format_arch: the key that identifies it


@dataclass(frozen=True)
class Job:
    kind: str  # "train" | "supernet"
    network: Network
    steps: int | None = None
    seed: int | None = None

    @property
    def key(self) -> str:
        return json.dumps([self.kind, self.network.arch, self.steps, self.seed])


def key_of(record: dict) -> str:
    return json.dumps([record["kind"], record["arch"], record.get("steps"), record.get("seed")])


# -- the networks ----------------------------------------------------------------------------------------
def sampled(space: SearchSpace, n: int, seed: int) -> list[Network]:
    """The space's reference networks first, then seeded random points, ``n`` distinct networks in all."""
    import random

    nets: dict[str, Network] = {}
    for name, arch in REFERENCES.items():
        if space.contains(arch) and len(nets) < n:
            nets.setdefault(format_arch(arch), Network(name, format_arch(arch)))
    rng, tries = random.Random(seed), 0
    while len(nets) < n:
        tries += 1
        if tries > 100 * n:
            raise UsageError(f"space {space.name} has fewer than {n} distinct networks: lower fidelity.archs")
        a = format_arch(space.sample(rng))
        nets.setdefault(a, Network(f"sample{len(nets):02d}", a))
    return list(nets.values())


def from_study(where: str, top: int) -> list[Network]:
    """The best ``top`` finished trials of a study by holdout top-1 (test top-1 is never read)."""
    rows = _study_rows(where)
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("top1") not in (None, "") and r.get("arch")]
    if len(done) < top:
        raise UsageError(f"study {where} has {len(done)} finished trials, fewer than fidelity.top={top}: "
                         f"lower fidelity.top or run the search longer")
    best = sorted(done, key=lambda r: (-float(r["top1"]), int(r["number"])))[:top]
    out: dict[str, Network] = {}
    for r in best:
        a = format_arch(parse_arch(r["arch"]))
        out.setdefault(a, Network(f"trial {r['number']}", a))
    return list(out.values())


def _study_rows(where: str) -> list[dict]:
    """Trial rows (number, state, arch, top1) of a study folder's trials.csv or of a storage URL."""
    path = Path(where).expanduser()
    if "://" not in where:
        if (path / "trials.csv").is_file():
            return trial_rows(path / "trials.csv")
        if not (path / "study.log").is_file():
            raise UsageError(f"fidelity.study={where}: no study there (no trials.csv or study.log): pass a study "
                             f"folder (results/search/<space>/<study>) or a storage URL")
        url, name = str(path / "study.log"), None
    else:
        url, _, name = where.partition("#")
    return _storage_rows(url, name or None, where)


def _storage_rows(url: str, name: str | None, where: str) -> list[dict]:
    import optuna

    from .storage import open_storage

    storage, _ = open_storage(url, Path(url))
    names = optuna.get_all_study_names(storage=storage)
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        raise UsageError(f"fidelity.study={where}: " + (f"no study {name!r} there" if name else "several studies")
                         + f" (it holds {', '.join(names) or 'none'}): pass fidelity.study=<URL>#<study name>")
    study = optuna.load_study(study_name=name, storage=storage)
    return [{"number": t.number, "state": t.state.name, "arch": t.user_attrs.get("arch"),
             "top1": t.user_attrs.get("top1")} for t in study.get_trials(deepcopy=False)]


# -- sharing the trainings ------------------------------------------------------------------------------
class Ledger:
    """The run folder's records and claims, and this worker's lock (see the module note)."""

    def __init__(self, folder: Path, worker: str):
        self.folder, self.worker = Path(folder), worker
        self.folder.mkdir(parents=True, exist_ok=True)
        self.results, self.claims = self.folder / RESULTS, self.folder / CLAIMS
        self.locks = Journal(self.folder / CLAIMS)  # its worker locks: <folder>/claims.jsonl.workers/
        self.locks.register(worker)

    @contextmanager
    def locked(self):
        with open(self.folder / "claims.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def records(self) -> list[dict]:
        return read_jsonl(self.results)

    def bind(self, settings: dict) -> None:
        """Keep the settings every training of this folder shares; refuse a rerun that changed them."""
        path = self.folder / "settings.json"
        with self.locked():
            if not path.is_file():
                from core.files import write_atomic

                write_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")
                return
            theirs = json.loads(path.read_text())
        for k in sorted(set(theirs) | set(settings)):
            if theirs.get(k) != settings.get(k):
                raise UsageError(f"{self.folder} was run with {k}={json.dumps(theirs.get(k))}, not "
                                 f"{json.dumps(settings.get(k))}: use the same settings or pass another fidelity.run")

    def claim(self, jobs: list[Job]) -> Job | None:
        """The first job nobody finished and no live worker holds, now claimed by this worker; None: none left."""
        with self.locked():
            done = {key_of(r) for r in self.records()}
            held = {}
            for c in read_jsonl(self.claims):
                held[c["key"]] = c["worker"]
            alive: dict[str, bool] = {}
            for job in jobs:
                if job.key in done:
                    continue
                owner = held.get(job.key)
                if owner is not None and owner != self.worker:
                    if owner not in alive:
                        alive[owner] = self.locks.is_alive(owner)
                    if alive[owner]:
                        continue
                append_line(self.claims, {"key": job.key, "worker": self.worker})
                return job
        return None

    def pending(self, jobs: list[Job]) -> int:
        done = {key_of(r) for r in self.records()}
        return sum(j.key not in done for j in jobs)

    def record(self, row: dict) -> None:
        with self.locked():
            if key_of(row) not in {key_of(r) for r in self.records()}:  # a claim freed by mistake: keep one
                append_line(self.results, row)


def append_line(path: Path, row: dict) -> None:
    """Append one JSON line and flush it to disk; a torn last line (a writer killed mid-write) is cut first."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def arch_of(network: Network) -> ArchSpec:
    return parse_arch(network.arch)
