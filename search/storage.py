"""Where a study lives, and how a dead worker's trial is found and redone.

Storage: an Optuna journal file by default (``<study dir>/study.log``), or any RDB URL
(``sqlite:///...``, ``postgresql://...``). A value without ``://`` is a journal file path.

Dead workers. A trial that was RUNNING when its process died must be marked FAILED and its
parameters enqueued again (``requeue``), once. How "dead" is known depends on the storage:

* journal file (one machine): every worker holds an exclusive ``flock`` on
  ``<journal>.workers/<worker id>.lock`` for its whole life and stamps its id on each trial. A RUNNING
  trial whose worker's lock can be taken is stale -- immediately, with no timeout to wait out, and
  PID reuse cannot fool it. (Optuna's heartbeat is RDB-only.)
* RDB (many machines): Optuna's heartbeat (``heartbeat_interval``/``grace_period``), with
  ``requeue`` as its stale-trial callback; ``study.optimize`` checks before every trial.

A trial stopped by Ctrl-C is marked ``interrupted`` by the objective and requeued the same way.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from core.redact import redact, remember

from . import SearchError

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
HEARTBEAT_S = 20
GRACE_S = 90
NO_WORKER_GRACE_S = 60  # a RUNNING trial with no worker stamp (killed right after ask) is stale after this


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a stale or interrupted trial's parameters again, marked ``retry_of``."""
    attrs = {"retry_of": trial.number}
    if trial.user_attrs.get("reference"):
        attrs["reference"] = trial.user_attrs["reference"]
    study.enqueue_trial(dict(trial.params), user_attrs=attrs)


class Journal:
    """A journal-file storage plus the worker locks that tell live workers from dead ones."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.workers = self.path.with_name(self.path.name + ".workers")
        self._held = None

    def open(self) -> optuna.storages.BaseStorage:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The backend's own lock (its default, named here so the repair below takes the same one).
            lock = optuna.storages.journal.JournalFileSymlinkLock(str(self.path))
            self._drop_torn_tail(lock)
            backend = optuna.storages.journal.JournalFileBackend(str(self.path), lock_obj=lock)
            return optuna.storages.JournalStorage(backend)
        except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
            raise SearchError(f"journal {self.path} is corrupt ({str(e).splitlines()[0]}): move it away "
                              f"or pass another study_name") from None

    def _drop_torn_tail(self, lock) -> None:
        # A process killed inside a write can leave a last line without its newline; the next
        # append would glue onto it and make the whole journal unreadable. Every append holds the
        # journal's lock, so under it a missing newline is a dead writer's, never one in progress.
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        lock.acquire()
        try:
            with open(self.path, "rb+") as f:
                end = torn_tail_start(f)
                if end is not None:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            lock.release()

    def register(self, worker: str) -> None:
        """Hold this worker's lock until the process ends (the OS releases it on any death)."""
        self.workers.mkdir(parents=True, exist_ok=True)
        self._held = open(self.workers / f"{worker}.lock", "w")
        fcntl.flock(self._held, fcntl.LOCK_EX)

    def is_alive(self, worker: str) -> bool:
        path = self.workers / f"{worker}.lock"
        if not path.exists():
            return False
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            path.unlink(missing_ok=True)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    @contextmanager
    def recovering(self):
        """One worker at a time looks for stale trials, so none is requeued twice."""
        self.workers.mkdir(parents=True, exist_ok=True)
        with open(self.workers / "recover.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield


def torn_tail_start(f, block: int = 1 << 16) -> int | None:
    """Where the torn last line of the binary file ``f`` starts (None: it ends with a newline), found by
    reading back from the end one ``block`` at a time: a journal grows to many megabytes, a line does not."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return None
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return None
    pos = end
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        newline = f.read(pos - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        pos = start
    return 0


def open_storage(url: str | None, default_journal: Path):
    """(Optuna storage, Journal or None) for ``storage=`` (None: the study's journal file)."""
    if not url:
        journal = Journal(default_journal)
        return journal.open(), journal
    url = str(url)
    if "://" not in url:
        journal = Journal(Path(url).expanduser())
        return journal.open(), journal
    remember(url)  # whatever the driver or Optuna prints from now on, this password is hidden
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise SearchError(f"storage={redact(url)}: unknown scheme {scheme!r}; use a journal file path or a "
                          f"database URL ({', '.join(s + '://' for s in RDB_SCHEMES[:3])}...)")
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                                 heartbeat_stale_trial_callback=requeue)
            return storage, None
        except Exception as e:  # sqlalchemy/driver errors: unreachable host, bad URL, missing driver
            # Workers started together on an empty database race to create Optuna's tables; the
            # losers see a duplicate-key error from the catalog and succeed on a second try.
            if _lost_schema_race(e) and attempt < 4:
                time.sleep(0.2 + random.random())
                continue
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if isinstance(e, ImportError) and e.__cause__ is not None:  # Optuna's message omits which module
                first += (f" ({e.__cause__}): install it, or name a driver you have "
                          f"(postgresql+psycopg2:// with pip install -e '.[postgres]')")
            raise SearchError(f"cannot open storage {redact(url)}: {redact(first)}") from None
    raise AssertionError("unreachable")


def _lost_schema_race(e: Exception) -> bool:
    text = str(e).lower()
    return "already exists" in text or "duplicate key" in text or "uniqueviolation" in text


def recover(study: optuna.Study, journal: Journal | None, *, now: Callable[[], dt.datetime] | None = None) -> list[int]:
    """Fail and requeue trials of dead workers and interrupted trials; returns their numbers."""
    now = now or (lambda: dt.datetime.now(dt.timezone.utc))
    if journal is None:
        optuna.storages.fail_stale_trials(study)  # RDB heartbeat; requeues through its callback
    done = []
    ctx = journal.recovering() if journal is not None else _nullcontext()
    with ctx:
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials} | {t.system_attrs.get("failed_trial") for t in trials}
        for t in trials:
            if t.number in retried:
                continue
            if t.state == TrialState.FAIL and t.user_attrs.get("interrupted"):
                requeue(study, t)
                done.append(t.number)
            elif t.state == TrialState.RUNNING and journal is not None and _stale(t, journal, now()):
                # Its worker is gone, so nobody else can finish it meanwhile.
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                requeue(study, t)
                done.append(t.number)
    return done


def _stale(t: FrozenTrial, journal: Journal, now: dt.datetime) -> bool:
    worker = t.user_attrs.get("worker")
    if worker:
        return not journal.is_alive(worker)
    start = t.datetime_start
    if start is None:
        return False
    # RDB storages keep naive local times, the journal UTC-aware ones.
    now = now.astimezone(start.tzinfo) if start.tzinfo else now.astimezone().replace(tzinfo=None)
    return (now - start).total_seconds() > NO_WORKER_GRACE_S


@contextmanager
def _nullcontext():
    yield
