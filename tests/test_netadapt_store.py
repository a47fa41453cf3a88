"""The run folder survives a kill at any point between and within its writes."""
from __future__ import annotations

import pytest

from netadapt import NetAdaptError
from netadapt.store import CHECKPOINT, HISTORY, RunFolder, save_torch
from space import V3_SMALL, build_model, format_arch


def record(i: int) -> dict:
    return {"iteration": i, "arch": format_arch(V3_SMALL), "latency_ms": 1.0 - i / 10, "top1": 0.5}


def test_kill_between_checkpoint_and_history_and_torn_lines_are_repaired(tmp_path):
    folder = RunFolder(tmp_path)
    folder.create({"a": 1})
    state = {"w": build_model(V3_SMALL, 3).classifier[3].weight.detach()}
    folder.commit(record(0), state)
    folder.commit(record(1), state)
    # killed after the checkpoint of iteration 2, in the middle of appending its line
    save_torch(tmp_path / CHECKPOINT, {"arch": record(2)["arch"], "state_dict": state, "record": record(2)})
    with open(tmp_path / HISTORY, "ab") as f:
        f.write(b'{"iteration": 2, "arch": "ste')
    (tmp_path / f".{CHECKPOINT}.tmp123").write_bytes(b"half a checkpoint")
    assert folder.history() == [record(0), record(1), record(2)]
    assert folder.history() == [record(0), record(1), record(2)]  # repair is idempotent
    assert not list(tmp_path.glob(".*.tmp*"))
    assert (tmp_path / HISTORY).read_text().count("\n") == 3


def test_other_settings_are_refused(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.check_settings({"a": 1}) is False
    folder.create({"a": 1, "b": 2})
    assert folder.check_settings({"a": 1, "b": 2}) is True
    # Nothing done yet (it failed at once, e.g. a diverging pretraining): a fixed command starts over.
    assert folder.check_settings({"a": 1, "b": 3}) is False
    (tmp_path / HISTORY).write_text("{}\n")
    with pytest.raises(NetAdaptError, match=r"other settings \(b\)"):
        folder.check_settings({"a": 1, "b": 3})


def test_a_run_from_before_a_setting_existed_resumes_only_with_its_old_value(tmp_path):
    folder = RunFolder(tmp_path)
    folder.create({"a": 1})  # written before "importance" was recorded
    (tmp_path / HISTORY).write_text("{}\n")
    legacy = {"importance": "weight"}
    assert folder.check_settings({"a": 1, "importance": "weight"}, legacy=legacy) is True
    with pytest.raises(NetAdaptError, match=r"other settings \(importance\)"):
        folder.check_settings({"a": 1, "importance": "bn_weight"}, legacy=legacy)
