"""A run folder that survives a kill at any moment.

Order of writes for iteration k: first ``checkpoint.pt`` (state dict, arch, and the history record
of k), atomically (temp file, fsync, rename); then the record is appended to ``history.jsonl``. So
the checkpoint is never behind the history. On resume a torn last history line is cut off, and a
record that made it into the checkpoint but not into the history is appended from the checkpoint.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from core.files import save_torch, write_atomic
from core.rerun import differences
from space import ArchSpec, parse_arch

from . import NetAdaptError

HISTORY, CHECKPOINT, SETTINGS = "history.jsonl", "checkpoint.pt", "run.json"


def differing(old: dict, new: dict, ignore=()) -> list[str]:
    """The settings whose values differ, besides ``ignore`` (``protocol`` is derived from the others, and
    latency records are compared by ``measure.model.changed``)."""
    diff = differences(old, new, ignore={"protocol", "latency", "latency_history", *ignore})
    return sorted({k.split(".")[0] for k in diff})


class RunFolder:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    # -- settings: a rerun must ask for the same run ---------------------------------------------
    def check_settings(self, settings: dict, legacy: dict | None = None, *, accept_changed_latency: bool = False,
                       log=print) -> bool:
        """True when the folder holds a run started with ``settings``; False when it is new.

        Raises when it holds a different run, so a changed command never mixes two runs. ``legacy``: the
        value a setting had before run.json recorded it (a run from then resumes when asked for that value).
        A latency table that changed since (``measure.model.changed``) is refused with its own message unless
        ``accept_changed_latency``: then run.json takes the new record and keeps the old in ``latency_history``.
        """
        from measure.model import changed

        p = self.path(SETTINGS)
        if not p.is_file():
            return False
        try:
            old = json.loads(p.read_text())
        except json.JSONDecodeError:
            raise NetAdaptError(f"{p} is unreadable: remove {self.folder} to start over") from None
        old = {**(legacy or {}), **old}
        diff = differing(old, settings)
        latency = changed(old.get("latency"), settings["latency"]) if "latency" in settings else None
        started = self.path(HISTORY).is_file() or self.path(CHECKPOINT).is_file()
        if (diff or latency) and not started:
            return False  # a run that failed before its first result (a NaN, say): nothing to protect
        if diff:
            raise NetAdaptError(f"{self.folder} holds a run with other settings ({', '.join(diff)}): "
                                "rerun with the same settings to resume, or pass another run_name")
        if latency and not accept_changed_latency:
            raise NetAdaptError(f"the latency table of {self.folder} changed since the run started ({latency}): "
                                "restore it, pass latency.accept_changed=true to resume with it (the start's cost, "
                                "target and delta stay the first run's), or pass another run_name")
        if latency:
            kept = {**settings, "latency_history": [*old.get("latency_history", []), old.get("latency")]}
            write_atomic(p, json.dumps(kept, indent=2, sort_keys=True) + "\n")
            log(f"{self.folder}: latency table changed ({latency}); accepted (latency.accept_changed=true)")
        return True

    def create(self, settings: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path(SETTINGS), json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def create_from(self, source: RunFolder, settings: dict) -> None:
        """A new run whose first iterations are ``source``'s (history and current network). run.json is
        written last: a kill before it leaves no run here, and the rerun copies again."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path(CHECKPOINT), source.path(CHECKPOINT).read_bytes())
        write_atomic(self.path(HISTORY), source.path(HISTORY).read_bytes())
        self.create(settings)

    # -- history + checkpoint ----------------------------------------------------------------------
    def history(self) -> list[dict]:
        """Records in order, after repairing a kill between checkpoint and history (see module doc)."""
        for tmp in self.folder.glob(".*.tmp*"):  # a write cut short by a kill; its target is intact
            tmp.unlink(missing_ok=True)
        hist_path = self.path(HISTORY)
        records: list[dict] = []
        if hist_path.is_file():
            raw = hist_path.read_bytes()
            good = 0
            for line in raw.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break  # torn last line
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
                good += len(line)
            if good < len(raw):
                with open(hist_path, "r+b") as f:
                    f.truncate(good)
        ckpt = self.checkpoint()
        if ckpt is not None:
            last = records[-1]["iteration"] if records else -1
            rec = ckpt["record"]
            if rec["iteration"] == last + 1:
                self.append(rec)
                records.append(rec)
            elif rec["iteration"] != last:
                raise NetAdaptError(f"{self.folder}: checkpoint is at iteration {rec['iteration']} but the "
                                    f"history at {last}: remove the folder to start over")
        for i, r in enumerate(records):
            if r.get("iteration") != i:
                raise NetAdaptError(f"{hist_path}: line {i + 1} is iteration {r.get('iteration')}, expected {i}")
        return records

    def checkpoint(self) -> dict | None:
        p = self.path(CHECKPOINT)
        if not p.is_file():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 -- written atomically, so this is outside damage
            raise NetAdaptError(f"{p} is unreadable: remove {self.folder} to start over") from None

    def commit(self, record: dict, state_dict: dict) -> None:
        """Make iteration ``record`` durable: checkpoint first, then the history line."""
        save_torch(self.path(CHECKPOINT), {"arch": record["arch"], "state_dict": state_dict, "record": record})
        self.append(record)

    def append(self, record: dict) -> None:
        with open(self.path(HISTORY), "ab") as f:
            f.write((json.dumps(record) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def current(self) -> tuple[ArchSpec, dict]:
        ckpt = self.checkpoint()
        return parse_arch(ckpt["arch"]), ckpt["state_dict"]

    # -- end of run ---------------------------------------------------------------------------------
    def read_json(self, name: str) -> dict | None:
        p = self.path(name)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None  # written atomically; a bad file is redone

    def write_json(self, name: str, data: dict) -> None:
        write_atomic(self.path(name), json.dumps(data, indent=2) + "\n")
