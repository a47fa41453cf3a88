"""The journal's torn tail (a writer killed inside an append) is cut under Optuna's own journal lock, while
other workers append, and found by reading back from the end of the file only."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import optuna
import pytest
from conftest import REPO

from search.storage import Journal, torn_tail_start

TORN = b'{"op_code":5,"worker_id":"dead-worker","trial_id":3,"sta'  # an append cut short


class CountingFile(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n=-1):
        out = super().read(n)
        self.bytes_read += len(out)
        return out


def test_the_torn_tail_is_found_from_the_end_without_reading_the_journal():
    lines = b"".join(b'{"op_code":4,"worker_id":"w","trial_id":%d,"value":0.5}\n' % i for i in range(100_000))
    assert len(lines) > 5_000_000
    f = CountingFile(lines + TORN)
    assert torn_tail_start(f) == len(lines)
    assert f.bytes_read <= 1 + (1 << 16)  # the last byte, then one block back
    f = CountingFile(lines)
    assert torn_tail_start(f) is None and f.bytes_read == 1  # intact: one byte read
    long_torn = b"x" * 300_000  # a torn line longer than a block: read back block by block
    f = CountingFile(lines + long_torn)
    assert torn_tail_start(f) == len(lines) and f.bytes_read < len(long_torn) + 2 * (1 << 16)
    assert torn_tail_start(CountingFile(TORN)) == 0  # nothing but a torn line
    assert torn_tail_start(CountingFile(b"")) is None


APPENDER = """
import sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
optuna.logging.set_verbosity(optuna.logging.ERROR)
# A worker as Optuna opens it: the backend's default lock (JournalFileSymlinkLock on the same path).
study = optuna.load_study(study_name="tail", storage=JournalStorage(JournalFileBackend(sys.argv[1])))
print("loaded", flush=True)
sys.stdin.readline()  # go
study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=int(sys.argv[2]),
               callbacks=[lambda s, t: print("trial", t.number, flush=True)])
print("done", flush=True)
"""

RECOVERER = """
import sys
from optuna.storages.journal import JournalFileSymlinkLock
from search.storage import Journal
acquire = JournalFileSymlinkLock.acquire
def acquire_and_wait(self):  # Optuna's lock, taken; then hold it until the test says go
    got = acquire(self)
    print("locked", flush=True)
    sys.stdin.readline()
    return got
JournalFileSymlinkLock.acquire = acquire_and_wait
import optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="tail", storage=Journal(sys.argv[1]).open())
print("opened", len(study.trials), flush=True)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _say(p: subprocess.Popen, line: str = "go") -> None:
    p.stdin.write(line + "\n")
    p.stdin.flush()


@pytest.mark.timeout(300)
def test_a_worker_appends_while_another_opens_the_study_and_cuts_the_torn_tail(tmp_path):
    path = tmp_path / "study.log"
    study = optuna.create_study(study_name="tail", storage=Journal(path).open())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with open(path, "ab") as f:
        f.write(TORN)  # a third worker died inside an append
    appender = _start(APPENDER, str(path), "5")
    try:
        assert appender.stdout.readline().strip() == "loaded", appender.stderr.read()
        recoverer = _start(RECOVERER, str(path))
        try:
            # The repair takes the journal's lock before it looks at the tail: without it, this line is "opened".
            assert recoverer.stdout.readline().strip() == "locked", recoverer.stderr.read()
            assert path.read_bytes().endswith(TORN)  # held, not yet repaired
            _say(appender)  # its first append now waits for the lock the repair holds
            _say(recoverer)
            opened = recoverer.stdout.readline().split()
            assert opened[0] == "opened" and int(opened[1]) >= 3, recoverer.stderr.read()
            assert recoverer.wait() == 0
        finally:
            recoverer.kill()
        out = appender.communicate()[0].split("\n")
        assert appender.returncode == 0 and out[-2] == "done", out
    finally:
        appender.kill()
    data = path.read_bytes()
    assert TORN not in data and data.endswith(b"\n")
    trials = optuna.load_study(study_name="tail", storage=Journal(path).open()).trials
    assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
