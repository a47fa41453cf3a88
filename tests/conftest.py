"""Shared fixtures: the reference state-dict shapes, a clean environment for CLI runs, the benchmark scripts."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("BNECK_FIXTURES", REPO.parent / "shared" / "fixtures"))
_BUNDLED = REPO / "tests" / "fixtures"
# Latency tables made by tests calibrate on two tiny networks, not the full set (a minute per fresh
# table); inherited by the commands tests start. The full set is tested on its own (test_measure).
os.environ.setdefault("BNECK_CALIBRATION_SET", "quick")
# A two-block space whose tables build in seconds (latency tests, local and over SSH).
TINY_SPACE = """
name: tiny
stem: 8
last_conv: 6x
head: 32
blocks:
  - {kernel: [3, 5], expand: 16, out: 8}
  - {kernel: 3, expand: [16, 24], out: 16, se: [false, true], act: HS, stride: 2}
"""


@pytest.fixture(autouse=True)
def _machine_units(tmp_path_factory, monkeypatch):
    """Each test its own store of machine latency units (measure.unit): a table one test builds never sets the unit
    of another's, nor of the user's own machine. Inherited by the commands a test starts."""
    monkeypatch.setenv("BNECK_UNITS", str(tmp_path_factory.mktemp("units")))


@pytest.fixture(scope="session")
def torchvision_shapes() -> dict:
    """Keys and shapes of torchvision's mobilenet_v3_large/small state dicts, in order."""
    name = "torchvision_mobilenet_v3_state_dict_shapes.json"
    path = FIXTURES / name if (FIXTURES / name).is_file() else _BUNDLED / name
    return json.loads(path.read_text())


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m module args...`` as a user would; returns the completed process."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    return found


@pytest.fixture(scope="session")
def postgres_server():
    """(URL with its password, the password) of a throwaway PostgreSQL server on loopback (Debian's
    package) that requires the password (scram-sha-256); skips when the server is not installed."""
    import secrets

    password = f"Pw-{secrets.token_hex(8)}"
    for url in _postgres(password):
        yield url, password


def _fresh_database(server_url: str) -> str:
    """A new, empty database on the test server: studies of one test never meet another test's (two tests
    naming their study `pg` on one shared database made the second one join the first's study)."""
    import secrets

    import sqlalchemy

    name = f"t_{secrets.token_hex(6)}"
    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE needs it
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a fresh database on that server, its password in it: pass it on, never print it."""
    return _fresh_database(postgres_server[0])


@pytest.fixture
def postgres_password_url(postgres_server):
    """(URL of a fresh database with its password, the password), for tests that look for the password in
    outputs."""
    return _fresh_database(postgres_server[0]), postgres_server[1]


def write_private(path: Path, text: str) -> None:
    """A new file readable by its owner only from its first byte: the mode is given to open() (the umask
    can only remove bits from it), not set after the text is in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _postgres(password: str):
    import getpass
    import shutil
    import socket
    import time

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql)")
    pytest.importorskip("psycopg2")
    import tempfile
    from pathlib import Path as _P

    # Not under pytest's tmp dir: that one is private to the current user, and the server may
    # run as another (postgres) user. mkdtemp makes it 0700.
    root = _P(tempfile.mkdtemp(prefix="bneck-pg-"))
    data = root / "data"
    # initdb refuses to run as root: run the server as Debian's postgres user then.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = "postgres" if as_user else getpass.getuser()
    write_private(root / "pw", password + "\n")
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", user, "--auth=scram-sha-256", f"--pwfile={root / 'pw'}",
                    "-E", "UTF8"], check=True, capture_output=True)
    (root / "pw").unlink()  # initdb has stored its hash; the file is not needed any more
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{port}/postgres"
        deadline = time.time() + 20
        import sqlalchemy

        while True:
            try:
                with sqlalchemy.create_engine(url).connect():
                    break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("latency_lut")``: the script ``benchmarks/latency_lut/latency_lut.py`` as a module."""
    def load(name: str):
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        return importlib.import_module(f"benchmarks.{name}.{name}")

    return load
