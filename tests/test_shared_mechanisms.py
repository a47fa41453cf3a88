"""The mechanisms search, the supernet and NetAdapt share, each implemented once (core/): the check that a
rerun asks for the same settings, the atomic torch.save, and a trial's architecture read from trials.csv."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.files import save_torch
from core.rerun import differences, flat, shorten
from core.trials import trial_arch_text
from netadapt.start import trial_arch
from netadapt.store import RunFolder
from space import V3_SMALL, format_arch, parse_arch
from train.supernet.errors import SupernetError
from train.supernet.estimator import _trial_arch
from train.supernet.train import check_binding

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "space", "measure", "train", "search", "netadapt", "plots")


# -- the rerun-settings check --------------------------------------------------------------------
def test_differences_flattens_normalises_whole_floats_and_treats_absent_as_null():
    theirs = {"train": {"lr": 0.1, "epochs": 2.0}, "space": "v3_small", "weights": None, "protocol": {"x": 1}}
    ours = {"train": {"lr": 0.1, "epochs": 2}, "space": "v3_small", "protocol": {"x": 2}}
    assert flat(theirs)["train.epochs"] == 2 and isinstance(flat(theirs)["train.epochs"], int)
    assert differences(theirs, ours) == ["protocol.x"]
    assert differences(theirs, ours, ignore=("protocol",)) == []
    ours = {**ours, "train": {"lr": 0.2, "epochs": 3}, "seed": 1}
    assert differences(theirs, ours, ignore=("protocol",)) == ["seed", "train.epochs", "train.lr"]
    first = ("train", "seed")  # an order of the caller's (search names BOUND's keys in its order)
    assert differences(theirs, ours, ignore=("protocol",), order=lambda k: (first.index(k.split(".")[0]), k)) == [
        "train.epochs", "train.lr", "seed"]
    assert shorten("x" * 10, 10) == "x" * 10 and shorten("x" * 11, 10) == "x" * 7 + "..."


def test_all_three_packages_refuse_the_same_change(tmp_path):
    """One nested value changed: the study names the flat key, the supernet too, NetAdapt the top-level key."""
    old = {"train": {"lr": 0.1, "epochs": 2.0}, "seed": 0}
    new = {"train": {"lr": 0.2, "epochs": 2}, "seed": 0}
    sn = tmp_path / "supernet"
    sn.mkdir()
    (sn / "settings.json").write_text('{"binding": {"train": {"lr": 0.1, "epochs": 2.0}, "seed": 0}}')
    check_binding(sn, {"train": {"lr": 0.1, "epochs": 2}, "seed": 0})  # 2.0 from JSON equals 2
    with pytest.raises(SupernetError, match=r"was trained with train\.lr=0\.1, not train\.lr=0\.2"):
        check_binding(sn, new)
    run = RunFolder(tmp_path / "netadapt")
    run.create(old)
    run.path("history.jsonl").write_text("{}\n")
    assert run.check_settings({"train": {"lr": 0.1, "epochs": 2}, "seed": 0}) is True
    with pytest.raises(Exception, match=r"other settings \(train\)"):
        run.check_settings(new)


# -- the atomic torch.save ------------------------------------------------------------------------
def test_save_torch_replaces_whole_files_or_leaves_the_old_one(tmp_path):
    path = tmp_path / "sub" / "w.pt"
    save_torch(path, {"w": torch.arange(3)})
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 -- what torch raises for an unpicklable object is its own
        save_torch(path, {"w": lambda: 0})
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["w.pt"]


def test_core_loads_without_torch():
    code = "import sys, core, core.cli, core.files, core.rerun, core.trials; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _product_sources():
    for pkg in PACKAGES:
        yield from (REPO / pkg).rglob("*.py")


def test_one_implementation_of_each_shared_mechanism():
    """torch.save only in core/files.py; trials.csv rows parsed only in core/trials.py (search/results.py
    writes and reads its own tables); settings flattened only in core/rerun.py."""
    saves, readers, flatteners = [], [], []
    for p in _product_sources():
        text, rel = p.read_text(), str(p.relative_to(REPO))
        if "torch.save(" in text and rel != "core/files.py":
            saves.append(rel)
        if "trials.csv" in text and "DictReader" in text and rel not in ("core/trials.py", "search/results.py"):
            readers.append(rel)
        if re.search(r"isinstance\(v, float\) and math\.isfinite\(v\) and v == int\(v\)", text) and rel != "core/rerun.py":
            flatteners.append(rel)
    assert (saves, readers, flatteners) == ([], [], [])


# -- a trial's architecture from trials.csv -------------------------------------------------------
def _study(tmp_path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    arch = format_arch(V3_SMALL)
    (folder / "trials.csv").write_text(f'number,state,arch\n0,COMPLETE,"{arch}"\n1.0,FAIL,\n2,RUNNING,"{arch}"\n')
    return folder


def test_trial_arch_text_reads_complete_trials_and_names_the_others(tmp_path):
    table = _study(tmp_path) / "trials.csv"
    assert parse_arch(trial_arch_text(table, 0, ValueError, unfinished="x")) == V3_SMALL
    with pytest.raises(ValueError, match=r"^trial 1 of .*study is FAIL: do this$"):
        trial_arch_text(table, 1, ValueError, unfinished="do this")
    with pytest.raises(ValueError, match=r"^trial 2 of .*study is RUNNING: do this$"):
        trial_arch_text(table, 2, ValueError, unfinished="do this")
    with pytest.raises(ValueError, match=r"trials\.csv has no trial 7: pick one$"):
        trial_arch_text(table, 7, ValueError, unfinished="x", missing=": pick one")


def test_netadapt_and_the_supernet_export_read_the_same_trial(tmp_path):
    from core.errors import UsageError

    folder = _study(tmp_path)
    assert trial_arch(folder, 0) == (V3_SMALL, "study-t0")
    assert _trial_arch(folder, 0) == V3_SMALL
    with pytest.raises(UsageError, match=r"trial 1 of .* is FAIL: start from a COMPLETE trial"):
        trial_arch(folder, 1)
    with pytest.raises(SupernetError, match=r"trial 1 of .* is FAIL: export a COMPLETE trial"):
        _trial_arch(folder, 1)
    with pytest.raises(UsageError, match=r"has no trial 5$"):
        trial_arch(folder, 5)
    with pytest.raises(SupernetError, match=r"has no trial 5: pass trial=<a number in it>$"):
        _trial_arch(folder, 5)
    assert os.listdir(folder) == ["trials.csv"]
