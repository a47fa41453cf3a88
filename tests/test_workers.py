"""Several search workers on one study: a journal file (one machine) and PostgreSQL (many machines).

Workers are real processes started as a user starts them; latency comes from one lookup-table file
they share, as workers of a heterogeneous cluster would be given the target machine's table.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import REPO

BASE = ["+space=v3_small", "data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32",
        "train.steps=2", "train.bn_recal_batches=1", "latency.input_size=32", "latency.warmup=1",
        "latency.repeats=5", "sampler.n_startup_trials=2", "progress=false"]


def start_worker(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "search.run", *BASE, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen], timeout: int = 400) -> None:
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_shared_study(study: optuna.Study, folder: Path, n_trials: int) -> None:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    # Together the workers stop at exactly n_trials, each counted once.
    assert len(complete) == n_trials
    assert len({t.number for t in complete}) == n_trials
    workers = {t.user_attrs.get("worker") for t in complete}
    assert len(workers) == 2, "both workers should have run trials"
    assert sum(1 for t in complete if t.user_attrs.get("reference")) == 1
    rows = read_csv(folder / "trials.csv")
    assert sorted(int(r["number"]) for r in rows) == sorted(t.number for t in trials)


@pytest.mark.timeout(600)
def test_two_workers_share_one_journal_file(tmp_path):
    lut = tmp_path / "lut.json"
    common = [f"results_dir={tmp_path}", f"latency.table={lut}", "study_name=shared", "n_trials=6"]
    procs = [start_worker(*common), start_worker(*common)]  # the same command, as a user starts N workers
    finish(procs)
    folder = tmp_path / "search" / "v3_small" / "shared"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.log")))
    check_shared_study(optuna.load_study(study_name="shared", storage=storage), folder, 6)
    # Any worker rebuilds the same tables from the storage: a third run adds nothing and rewrites them.
    before = (folder / "trials.csv").read_text()
    again = start_worker(*common)
    finish([again])
    assert (folder / "trials.csv").read_text() == before


@pytest.mark.timeout(600)
def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    lut = tmp_path / "lut.json"
    common = [f"results_dir={tmp_path}", f"latency.table={lut}", "study_name=pg", "n_trials=5",
              f"storage={postgres_url}"]
    finish([start_worker(*common), start_worker(*common)])
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    check_shared_study(study, tmp_path / "search" / "v3_small" / "pg", 5)


def test_worker_with_a_table_never_measures_and_says_what_is_missing(tmp_path):
    """A worker given the target machine's table and measure_missing=false measures nothing."""
    import space
    from measure.entries import arch_entries, call_entries
    from measure.table import LatencyTable

    lut = tmp_path / "target.json"
    table = LatencyTable(lut, input_size=32, warmup=1, repeats=5)
    table.calibrate()  # calibrated (an uncalibrated table is refused), and the reference's entries only
    table.fill(arch_entries(space.V3_SMALL, 32) + call_entries(arch_entries(space.V3_SMALL, 32)))  # as a build does
    before = lut.read_bytes()
    common = [f"results_dir={tmp_path}", f"latency.table={lut}", "latency.measure_missing=false"]
    ok = start_worker(*common, "n_trials=1")
    finish([ok])
    assert lut.read_bytes() == before  # used, never written
    missing = start_worker(*common, "n_trials=3")
    out, err = missing.communicate(timeout=300)
    assert missing.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "lacks entry block_r" in lines[0] and "measure_missing" in lines[0], err
    assert lut.read_bytes() == before
