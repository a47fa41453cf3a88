"""Where a run starts: the start architecture (reference, string, JSON, search trial) and its weights."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torch import nn

from core.cli import UsageError
from core.trials import trial_arch_text
from space import REFERENCES, ArchSpec, format_arch, parse_arch


def resolve_start(start, study=None, trial=None) -> tuple[ArchSpec, str]:
    """(arch, short name for run folders) from ``start`` or ``study`` + ``trial``."""
    if study is not None or trial is not None:
        if study is None or trial is None:
            raise UsageError("give both start_study=<study folder> and start_trial=<number>")
        return trial_arch(Path(str(study)), trial)
    text = str(start).strip() if start is not None else ""
    if not text:
        raise UsageError("no start network: pass start=v3_small|v3_large|<arch string>|<file.json>|"
                         "<study folder>:<trial>")
    if m := re.fullmatch(r"(.+):(\d+)", text):
        return trial_arch(Path(m[1]), int(m[2]))
    if text not in REFERENCES and " " not in text and not text.endswith(".json") and not text.startswith("{"):
        raise UsageError(f"unknown start {text!r}: use {', '.join(REFERENCES)}, an arch string, a .json file "
                         "or <study folder>:<trial number>")
    arch = parse_arch(text)
    if text in REFERENCES:
        return arch, text
    if text.endswith(".json"):
        return arch, Path(text).stem
    return arch, "arch-" + hashlib.sha1(format_arch(arch).encode()).hexdigest()[:8]


def exported_weights(start, study=None, trial=None) -> Path | None:
    """The state dict ``python -m search.supernet export`` wrote for the trial ``start`` names
    (``<study folder>:<trial>``, or ``start_study`` + ``start_trial``), when there is one: the weights the
    trial inherited from its study's supernet. None for any other start."""
    from train.supernet.estimator import export_path

    if study is not None and trial is not None:
        folder, number = Path(str(study)), trial
    elif m := re.fullmatch(r"(.+):(\d+)", str(start or "").strip()):
        folder, number = Path(m[1]), m[2]
    else:
        return None
    try:
        path = export_path(folder, int(number))
    except (TypeError, ValueError):
        return None
    return path if path.is_file() else None


def trial_arch(folder: Path, number) -> tuple[ArchSpec, str]:
    """The arch of finished trial ``number`` of the study in ``folder`` (trials.csv, else its storage)."""
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise UsageError(f"start_trial={number!r} is not a trial number") from None
    if not folder.is_dir():
        raise UsageError(f"study folder {folder} does not exist: pass results/search/<space>/<study>")
    name = f"{folder.name}-t{number}"
    table = folder / "trials.csv"
    if table.is_file():
        return parse_arch(trial_arch_text(table, number, UsageError, unfinished="start from a COMPLETE trial")), name
    journal = folder / "study.log"
    if not journal.is_file():
        raise UsageError(f"{folder} holds neither trials.csv nor study.log: is it a study folder?")
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            if t.number == number and t.state.name == "COMPLETE" and t.user_attrs.get("arch"):
                return parse_arch(t.user_attrs["arch"]), name
    raise UsageError(f"{journal} has no COMPLETE trial {number} with an arch")


def load_weights(model: nn.Module, path) -> str:
    """Load a state dict (torchvision key names) into ``model``; a classifier for another number of
    classes is left freshly initialised. Returns a note for the user; raises UsageError on mismatch."""
    path = Path(str(path))
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist: pass weights=<state dict .pt/.pth> or weights=null")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unreadable file is the same user error
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"cannot read weights {path}: {reason}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"weights {path} is not a state dict (a mapping of names to tensors)")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise UsageError(f"weights {path} do not fit the start network: {len(missing)} keys missing, "
                         f"{len(unexpected)} unexpected (first: {key})")
    head = ("classifier.3.weight", "classifier.3.bias")
    bad = [k for k in own if state[k].shape != own[k].shape]
    if bad and not set(bad) <= set(head):
        k = bad[0]
        raise UsageError(f"weights {path} do not fit the start network: {k} has shape "
                         f"{tuple(state[k].shape)}, the network {tuple(own[k].shape)}")
    model.load_state_dict({k: (own[k] if k in bad else v) for k, v in state.items()})
    if bad:
        return (f"weights {path}: classifier for {state[head[0]].shape[0]} classes replaced by a fresh one "
                f"for {own[head[0]].shape[0]}")
    return f"weights {path} loaded"
