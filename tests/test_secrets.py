"""A database password never leaves the command line it was given on: not in stdout, stderr, logs,
plots or results files (issue: search.run printed the full URL in its closing line)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from core.cli import redact

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


def test_a_wrong_password_fails_in_one_line_without_the_password(tmp_path, postgres_password_url):
    url, password = postgres_password_url
    wrong = url.replace(password, "Wrong-" + password[::-1])
    p = _run("search.run", *TINY, f"results_dir={tmp_path}", f"storage={wrong}")
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: cannot open storage"), p.stderr
    assert "Wrong-" not in p.stderr and password not in p.stderr
    assert not (tmp_path / "search").exists() or not any((tmp_path / "search").rglob("*.csv"))
