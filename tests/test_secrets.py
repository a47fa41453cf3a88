"""A database password never leaves the command line it was given on: not in stdout, stderr, logs,
plots or results files (issue: search.run printed the full URL in its closing line)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from urllib.parse import quote, unquote

import pytest
import sqlalchemy
from conftest import REPO, write_private
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.cli import redact
from core.redact import redact_url

TINY = ["+space=v3_small", "data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32",
        "train.steps=2", "train.bn_recal_batches=1", "latency.input_size=32", "latency.warmup=1",
        "latency.repeats=5", "sampler.n_startup_trials=2", "progress=false", "n_trials=2", "study_name=pg"]


def _run(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=500)


def test_redact_hides_the_password_of_any_url_in_a_text():
    text = "study pg in postgresql+psycopg2://bneck:s3cr:et@db.example:5432/bneck; sqlite:///x.db"
    assert redact(text) == "study pg in postgresql+psycopg2://bneck:***@db.example:5432/bneck; sqlite:///x.db"
    assert redact("postgresql://bneck@db/x") == "postgresql://bneck@db/x"  # no password: unchanged


# The forms of issue 31 and the ones an attacker tries next: (URL, what redact makes of it).
FORMS = [
    ("postgresql://db/x?password=hunter2", "postgresql://db/x?password=***"),
    ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("postgresql+psycopg2://bneck:s3cr/et@db/bneck", "postgresql+psycopg2://bneck:***@db/bneck"),
    ("mysql://u:pa@ss@db/x", "mysql://u:***@db/x"),
    ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
    ("postgresql://u:pw@[2001:db8::7]/db", "postgresql://u:***@[2001:db8::7]/db"),
    ("postgresql://u@h/db?sslpassword=k3y", "postgresql://u@h/db?sslpassword=***"),
    ("postgresql://u:p?q#r@h/db", "postgresql://u:***@h/db"),
    ("amqp://guest:gu3st@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
    ("weird-scheme+x://u:pw@h/db?token=t0k&x=1", "weird-scheme+x://u:***@h/db?token=***&x=1"),
    ("sqlite:///results/study.db", "sqlite:///results/study.db"),  # nothing to hide: left as written
    ("sqlite:///a@b.db", "sqlite:///a@b.db"),
    ("postgresql://bneck@db/x", "postgresql://bneck@db/x"),
    ("postgresql://db/x?application_name=me@home", "postgresql://db/x?application_name=me@home"),
]


@pytest.mark.parametrize("url, shown", FORMS)
def test_each_url_form_is_shown_with_its_password_hidden(url, shown):
    assert redact_url(url) == shown
    assert redact(f"cannot open storage {url}: refused") == f"cannot open storage {shown}: refused"


def test_query_secrets_are_hidden_beside_other_parameters():
    out = redact_url("postgresql://u@h/db?sslmode=require&sslpassword=k3y&password=hunter2")
    assert "k3y" not in out and "hunter2" not in out and "sslmode=require" in out
    assert redact("dsn host=db password=hunter2 user=u") == "dsn host=db password=*** user=u"
    assert redact("latency.passes=2") == "latency.passes=2"  # a key that only starts like one


SCHEMES = ["postgresql", "postgresql+psycopg2", "postgres", "mysql", "mysql+pymysql", "mariadb", "mssql+pyodbc",
           "oracle", "sqlite", "redis", "rediss", "amqp", "mongodb+srv", "cockroachdb", "x-y.z"]
HOSTS = ["db", "127.0.0.1", "[::1]", "[2001:db8::7]", "db.example.com", ""]
# Lower case everywhere else, so an upper-case password marker can only come from the password.
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
_SECRET_CHARS = _LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ@:/?#%"


@st.composite
def urls(draw):
    """(URL, its secrets): every userinfo form (user empty or not, password raw with @ : / ? # %, or
    percent-encoded), IPv4/IPv6/empty hosts, ports, paths, query parameters with secrets among them."""
    secret = st.builds(lambda s: "PW" + s, st.text(_SECRET_CHARS, max_size=12))
    password = draw(st.none() | secret)
    user = draw(st.text(_LOWER + "._-", max_size=6))
    encoded = draw(st.booleans())
    if password is None:
        userinfo = draw(st.sampled_from(["", f"{user}@"]))
    else:
        userinfo = f"{user}:{quote(password, safe='') if encoded else password}@"
    host = draw(st.sampled_from(HOSTS))
    port = draw(st.sampled_from(["", ":5432", ":6379", ":1"]))
    path = draw(st.sampled_from(["", "/", "/bneck", "/db/x", "/0"]))
    params, secrets = [], [password] if password else []
    for key in draw(st.lists(st.sampled_from(["password", "sslpassword", "token", "sslmode", "application_name",
                                              "connect_timeout"]), max_size=3)):
        if key in ("password", "sslpassword", "token"):
            value = draw(st.builds(lambda s: "QS" + s, st.text(_LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ@:/%", max_size=8)))
            secrets.append(value)
        else:
            value = draw(st.text(_LOWER + "@", max_size=6))
        params.append(f"{key}={value}")
    query = "?" + "&".join(params) if params else ""
    return f"{draw(st.sampled_from(SCHEMES))}://{userinfo}{host}{port}{path}{query}", secrets


@settings(max_examples=400, deadline=None)
@given(urls())
def test_no_generated_url_shows_its_password(case):
    url, secrets = case
    for s in secrets:
        assume(url.count(s) == 1)  # a secret that also reads as another part cannot be told apart
    for out in (redact_url(url), redact(url), redact(f"error: cannot open storage {url}: timeout")):
        for s in secrets:
            for form in {s, quote(s, safe=""), unquote(s)}:
                assert form not in out, (url, out)
    if not secrets and "@" not in url.partition("?")[2]:
        assert redact(url) == url  # nothing hidden, nothing changed (an '@' in the query may hide more)


@pytest.mark.timeout(900)
def test_no_output_or_file_carries_the_storage_password(tmp_path, postgres_password_url):
    url, password = postgres_password_url
    results = tmp_path / "results"
    common = [*TINY, f"results_dir={results}", f"latency.table={tmp_path / 'lut.json'}"]
    runs = [
        _run("search.run", *common, f"storage={url}"),  # the password typed on the command line
        _run("search.run", *common, "n_trials=3", "storage=${oc.env:BNECK_STORAGE}", env={"BNECK_STORAGE": url}),
        _run("search.run", *common, f"storage={url}", "--cfg", "job"),
        _run("search.run", *common, "storage=${oc.env:BNECK_STORAGE}", "--cfg", "job", "--resolve",
             env={"BNECK_STORAGE": url}),
        _run("search.run", *common, "storage=${oc.env:BNECK_STORAGE}", "--help", env={"BNECK_STORAGE": url}),
        _run("search.plot", f"results_dir={results}"),
    ]
    for p in runs:
        assert p.returncode == 0, p.stderr
    closing = [line for line in runs[0].stdout.splitlines() if line.startswith("2 finished trials")]
    assert closing and redact(url) in closing[0], runs[0].stdout  # the storage is named, password hidden
    assert "3 finished trials" in runs[1].stdout, runs[1].stdout  # the env var reached the same study
    assert redact(url) in runs[3].stdout  # --cfg job --resolve shows the URL, redacted
    files = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.name == "trials.csv" for p in files) and any(p.suffix == ".png" for p in files)
    assert password.encode() not in (tmp_path / "lut.json").read_bytes()
    for p in runs:
        assert password not in p.stdout and password not in p.stderr, (p.args, p.stdout, p.stderr)
    leaked = [str(p) for p in files if password.encode() in p.read_bytes()]
    assert not leaked, leaked
    import json

    import optuna

    study = optuna.load_study(study_name="pg", storage=url)
    attrs = json.dumps([study.user_attrs, [(t.user_attrs, t.system_attrs) for t in study.trials]], default=str)
    assert "settings" in study.user_attrs and len(study.trials) >= 3
    assert password not in attrs  # nor in what the study stores about itself


def test_a_wrong_password_fails_in_one_line_without_the_password(tmp_path, postgres_password_url):
    url, password = postgres_password_url
    wrong = url.replace(password, "Wrong-" + password[::-1])
    p = _run("search.run", *TINY, f"results_dir={tmp_path}", f"storage={wrong}")
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: cannot open storage"), p.stderr
    assert "Wrong-" not in p.stderr and password not in p.stderr
    assert not (tmp_path / "search").exists() or not any((tmp_path / "search").rglob("*.csv"))


def test_the_fixture_password_file_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)  # the most permissive umask: a file written the plain way would be world-readable
    try:
        write_private(tmp_path / "pw", "secret\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "pw").stat().st_mode) == 0o600


def test_the_test_server_asks_for_its_password(postgres_password_url):
    url, password = postgres_password_url
    for login in (url.replace(f":{password}@", "@"), url.replace(password, "Wrong-" + password)):
        with pytest.raises(sqlalchemy.exc.OperationalError, match="password"):
            sqlalchemy.create_engine(login).connect().close()
    with sqlalchemy.create_engine(url).connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1


CRASH = """
import logging, sys
from core.cli import run
url = sys.argv[1]
def main(argv):
    logging.basicConfig()
    logging.getLogger("optuna.storages").error("cannot reach %s", url)
    try:
        raise OSError(f"driver said: {url}")
    except OSError:
        logging.getLogger("sqlalchemy.pool").exception("connection lost")
    raise RuntimeError(f"unexpected failure on {url}")
run(main, ["storage=" + url])  # as typed on the command line
"""


def test_a_crash_and_third_party_logs_show_no_password():
    url = "postgresql://bneck:S3cret pass@db.example/bneck?sslpassword=K3y-pass"  # a space ends a token early
    p = subprocess.run([sys.executable, "-c", CRASH, url], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 1 and "RuntimeError: unexpected failure on postgresql://bneck:***" in p.stderr, p.stderr
    assert "cannot reach postgresql://bneck:***" in p.stderr and "connection lost" in p.stderr
    assert "OSError: driver said" in p.stderr  # the logged exception's traceback is there, redacted
    for secret in ("S3cret", "pass@db", "K3y-pass"):
        assert secret not in p.stderr + p.stdout, p.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, never listening: a connection there is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(900)
def test_bad_storage_urls_end_in_one_line_without_the_password(tmp_path):
    port = _closed_port()
    secret = "S3cret-Pw"
    urls = [
        f"postgresql+psycopg2://bneck:{secret}@127.0.0.1:{port}/bneck",  # nobody listening
        f"postgresql+psycopg2://bneck:{secret}@[::1]:{port}/bneck",  # IPv6
        f"postgresql+psycopg2://127.0.0.1:{port}/x?password={secret}",  # libpq's query form
        f"postgresql+psycopg2://u:{quote(secret + '@x', safe='')}@127.0.0.1:{port}/x",  # percent-encoded
        f"postgresql+psycopg2://:{secret}@127.0.0.1:{port}/x",  # empty user
        f"mysql://u:pa@ss-{secret}@127.0.0.1:{port}/x",  # '@' in the password, driver missing
        f"redis://:{secret}@127.0.0.1:6379/0",  # not a database: unknown scheme
        f"postgresql://u:{secret} two@127.0.0.1:{port}/x",  # a space: the URL token ends early
        f"postgresql://u:{secret}'q@127.0.0.1:{port}/x",  # Hydra cannot parse the override
        f"postgresql://u:{secret}=x@127.0.0.1:{port}/x",
        f"'postgresql://u:{secret} three@127.0.0.1:{port}/x'",  # quoted for Hydra: a space it accepts
    ]
    results = tmp_path / "results"
    for i, url in enumerate(urls):
        key = "++storage" if i % 2 else "storage"  # Hydra's other spelling must be caught too
        p = _run("search.run", *TINY, f"results_dir={results}", f"latency.table={tmp_path / 'lut.json'}",
                 f"{key}={url}")
        assert p.returncode == 2, (url, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: "), p.stderr
        assert secret not in p.stdout + p.stderr, (url, p.stdout, p.stderr)  # raw, encoded or decoded
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert not [str(f) for f in files if secret.encode() in f.read_bytes()]
    assert not (results / "search").exists() or not any((results / "search").rglob("*.csv"))


def test_a_url_without_its_password_connects_through_a_private_pgpass(tmp_path, monkeypatch, postgres_password_url):
    """What docs/guides/security.md advises: the password in libpq's password file, not in the URL."""
    url, password = postgres_password_url
    parsed = sqlalchemy.engine.make_url(url)
    bare = sqlalchemy.engine.URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                                        port=parsed.port, database=parsed.database)
    assert bare.password is None
    write_private(tmp_path / "pgpass", f"{parsed.host}:{parsed.port}:*:{parsed.username}:{password}\n")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    with sqlalchemy.create_engine(bare).connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
