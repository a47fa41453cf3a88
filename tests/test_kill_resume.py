"""SIGKILL a long run at several moments, rerun the same command, and lose nothing.

Each kill is triggered by what the run is doing, watched from outside: right after a latency-table
entry lands (so, amid measuring the next), right after a results table is rewritten (amid writing
the rest and the plot), right after the run's first file appears (start-up) and right after the study's
journal grows (a trial asked for or told: amid sampling and training). Never on a clock, so a fast or a
slow machine kills at the same moments. Whatever it hits, the rerun must
finish the study with every finished trial kept exactly once and every results file readable.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO

SEARCH = ["+space=v3_small", "data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32",
          "train.steps=6", "train.bn_recal_batches=1", "latency.input_size=32", "latency.warmup=1",
          "latency.repeats=5", "sampler.n_startup_trials=2", "progress=false", "n_trials=5", "study_name=k"]


def _env() -> dict:
    return dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")


def _stamp(paths) -> tuple:
    return tuple((str(p), p.stat().st_mtime_ns) for p in sorted(paths) if p.exists())


def kill_when(module: str, args: list[str], *, watch, timeout: float = 300.0) -> bool:
    """Start ``module``; SIGKILL it as soon as a file from ``watch()`` appears or changes.

    Returns False when the run ended on its own first; fails the test when neither happens in ``timeout``
    s (a hung run, not a moment to kill at).
    """
    p = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start, first = time.monotonic(), _stamp(watch())
    while p.poll() is None:
        if _stamp(watch()) != first:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return True
        if time.monotonic() - start > timeout:
            p.kill()
            p.wait()
            pytest.fail(f"{module} neither changed {watch()} nor ended in {timeout:.0f} s")
        time.sleep(0.02)
    return False


def run_to_end(module: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600)


def parse_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = path.read_text().splitlines()[0].split(",")
    assert all(len(r) == len(header) and None not in r for r in rows), f"{path} is torn"
    return rows


@pytest.mark.timeout(900)
def test_search_killed_at_any_moment_resumes(tmp_path):
    args = [*SEARCH, f"results_dir={tmp_path}"]
    folder = tmp_path / "search" / "v3_small" / "k"
    lut = lambda: list((tmp_path / "lut").rglob("*.json"))  # noqa: E731
    tables = lambda: [folder / "trials.csv"]  # noqa: E731
    journal = lambda: [folder / "study.log"]  # noqa: E731
    assert kill_when("search.run", args, watch=journal)  # start-up: the study was just opened
    assert kill_when("search.run", args, watch=lut)  # measuring latency-table entries
    assert kill_when("search.run", args, watch=tables)  # writing results after a trial
    assert kill_when("search.run", args, watch=tables)
    assert kill_when("search.run", args, watch=journal)  # a trial was just asked for or told: sampling, training
    kill_when("search.run", args, watch=lut)  # may finish first on a fast machine: no entry left to measure
    done = run_to_end("search.run", args)
    assert done.returncode == 0, done.stderr
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.log")))
    trials = optuna.load_study(study_name="k", storage=storage).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 5
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    # Nothing done twice: a redo exists only for a trial that did not finish.
    by_number = {t.number: t for t in trials}
    for t in trials:
        if "retry_of" in t.user_attrs:
            assert by_number[t.user_attrs["retry_of"]].state != optuna.trial.TrialState.COMPLETE
    assert sum(1 for t in complete if t.user_attrs.get("reference")) == 1
    study = optuna.load_study(study_name="k", storage=storage)
    assert list(study.user_attrs["companions"]) == ["v3_large"]  # the other reference, kept once, not a trial
    assert [r["name"] for r in parse_csv(folder / "references.csv")] == ["v3_small", "v3_large"]
    rows = parse_csv(folder / "trials.csv")
    assert sorted(int(r["number"]) for r in rows) == sorted(by_number)
    parse_csv(folder / "pareto.csv")
    parse_csv(folder / "hypervolume.csv")
    assert (folder / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    for table in (tmp_path / "lut").rglob("*.json"):
        saved = json.loads(table.read_text())
        assert saved["entries"] and saved["calibration"]["model"] == 8  # calibrated before the first trial
        assert sum(k.startswith("net_") for k in saved["entries"]) == 2  # the fixed (quick, conftest) set
    assert not [p for p in folder.rglob("*.tmp")]


TINY = "stem8 k3_e16_c8_re k3_e32_c16_s2_re k3_e48_c16_re k3_e64_c24_s2_se_hs k3_e72_c24_se_hs last96 head64"
# MACs are the resource, so where the run ends does not depend on timing noise and the budget check
# is exact; the latency table is still filled lazily (every proposal's latency is recorded) and
# calibrated first, so kills still land amid its measuring. A killed latency-resource run is resumed
# in tests/test_netadapt_loop.py.
NETADAPT = [f"start={TINY}", "resource=macs", "data=synthetic", "data.input_size=16", "data.n_train=64",
            "data.n_holdout=32", "latency.input_size=160", "latency.repeats=5", "latency.warmup=1", "pretrain_epochs=3",
            "long_epochs=1", "short_steps=3", "step=0.05", "budget=0.8", "threads=1", "progress=false",
            "train.batch_size=32", "train.bn_recal_batches=1", "baseline=false", "run_name=k"]


@pytest.mark.timeout(900)
def test_netadapt_killed_at_any_moment_resumes(tmp_path):
    lut = tmp_path / "lut.json"
    args = [*NETADAPT, f"latency.table={lut}", f"results_dir={tmp_path}"]
    folder = tmp_path / "netadapt" / "k"
    written = lambda: [folder / "history.jsonl", folder / "checkpoint.pt"]  # noqa: E731
    assert kill_when("netadapt.run", args, watch=lambda: [folder / "run.json"])  # start-up: pretraining begins
    assert kill_when("netadapt.run", args, watch=lambda: [lut])  # measuring latency-table entries
    assert kill_when("netadapt.run", args, watch=written)  # writing an iteration
    kill_when("netadapt.run", args, watch=written)  # may finish first on a fast machine
    done = run_to_end("netadapt.run", args)
    assert done.returncode == 0, done.stderr[-800:]
    lines = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == list(range(len(lines)))  # no gap, nothing twice
    # Stopped exactly when the budget was met, every step cutting at least delta.
    target = 0.8 * lines[0]["cost"]
    assert lines[-1]["cost"] <= target < lines[-2]["cost"] and len(lines) >= 3
    assert all(prev["cost"] - rec["cost"] >= 0.05 * lines[0]["cost"] for prev, rec in zip(lines, lines[1:]))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["budget"] == target and summary["reached_budget"] is True and summary["stopped"] is None
    import space

    assert space.parse_arch(str(folder / "final.json")) == space.parse_arch(lines[-1]["arch"])
    assert json.loads(lut.read_text())["calibration"]["model"] == 8  # on its fixed set, before iteration 0
    assert (folder / "final.onnx").stat().st_size > 0 and (folder / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
