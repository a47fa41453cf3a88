"""benchmarks/device/gpu.sh end to end on the CPU, tiny (BNECK_DEVICE_TINY=1 BNECK_DEVICE=cpu): the tests piece
writes its jsonl and md to $OUT; a piece it does not know ends in one line, exit 2."""
from __future__ import annotations

import json
import os
import subprocess

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "device" / "gpu.sh"


def _run(piece: str, out) -> subprocess.CompletedProcess:
    env = dict(os.environ, BNECK_DEVICE_TINY="1", BNECK_DEVICE="cpu", OUT=str(out), PYTHONPATH=str(REPO))
    return subprocess.run(["bash", str(SCRIPT), piece], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_tests_piece_runs_the_cuda_tests_and_writes_jsonl_and_md(tmp_path):
    r = _run("tests", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((tmp_path / "gpu_sh.jsonl").read_text().splitlines()[-1])
    assert row["piece"] == "tests" and row["rc"] == 0 and "skipped" in row["summary"]  # no CUDA here: all skip
    assert (tmp_path / "gpu_tests.md").read_text().startswith("# cuda tests")
    assert f"results: {tmp_path}" in r.stdout


def test_an_unknown_piece_is_one_line_and_exit_2(tmp_path):
    r = _run("everything", tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: unknown piece 'everything': pass tests, throughput or fidelity"]
