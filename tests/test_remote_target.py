"""latency.target=ssh://...: tables timed on a target through a real OpenSSH server on loopback.

The server is Debian's sshd (``tests/ssh_target.py``), started once for the session as the current user
with throwaway keys; the target interpreter is a virtual environment holding only numpy and onnxruntime.
Kills trigger on events (the runner's lock log, progress output), never on a clock.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ssh_target
from conftest import REPO, TINY_SPACE, run_cli

pytestmark = pytest.mark.skipif(not ssh_target.available(), reason="OpenSSH server not installed (Debian openssh-server)")

FAST = ["latency.input_size=32", "latency.repeats=5", "latency.warmup=1", "latency.max_rounds=1",
        "latency.confirm=0"]  # exactly `passes` timings per entry: the tests count them


@pytest.fixture(scope="session")
def loopback(tmp_path_factory):
    server = ssh_target.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def target_python(tmp_path_factory) -> Path:
    return ssh_target.target_python(tmp_path_factory.mktemp("target-venv") / "venv")


@pytest.fixture
def ssh_env(loopback, monkeypatch):
    monkeypatch.setenv("BNECK_SSH_CONFIG", str(loopback.ssh_config))
    return loopback


def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def target_args(loopback, python) -> list[str]:
    return [f"latency.target={loopback.url}", f"latency.target_python={python}"]


def lock_log(loopback) -> list[tuple[float, int, str]]:
    path = loopback.target_dir / "runner.log"
    if not path.is_file():
        return []
    return [(float(t), int(pid), what) for t, pid, what in (line.split() for line in path.read_text().splitlines())]


def one_error_line(p) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_the_target_interpreter_has_numpy_and_onnxruntime_and_no_torch(target_python):
    ok = subprocess.run([str(target_python), "-c", "import numpy, onnxruntime"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    torch = subprocess.run([str(target_python), "-c", "import torch"], capture_output=True, text=True)
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr


def test_build_and_validate_over_ssh_key_the_table_by_the_targets_machine(ssh_env, target_python, tmp_path):
    args = [f"space_file={space_file(tmp_path)}", f"results_dir={tmp_path}", *FAST, *target_args(ssh_env, target_python)]
    before = len(lock_log(ssh_env))
    p = run_cli("measure.lut", "build", *args)
    assert p.returncode == 0, p.stderr
    assert "8 entries and 2 calibration networks (17 timed now)" in p.stdout  # as a local build: 4 of them empty graphs
    path = next((tmp_path / "lut").rglob("*.json"))
    data = json.loads(path.read_text())
    target = data["target"]
    assert path.parent.name == data["machine"] == target["machine"]  # keyed by what the runner reported
    assert target["runtime"].startswith("onnxruntime ") and target["cpu"] and target["os"].startswith("Linux")
    assert target["url"] == ssh_env.url and data["reference"]["ms"] > 0 and data["calibration"]["model"] == 8
    from measure.runner import l2_bytes  # the target's caches, as its runner reports them (here: this machine)
    assert data["calibration"]["l2_bytes"] == target["l2"] == l2_bytes()
    assert all(len(e["passes"]) == 2 for e in data["entries"].values())
    # every entry timed paired there too: networks with the probe, the others with the reference block (shipped)
    assert all(t["paired"] and t["n"] == 80 for e in data["entries"].values() for t in e["passes"])
    assert data["reference"]["block"]["ms"] > 0 and "provisional" not in data["reference"]["block"]
    assert data["calibration"]["entries"] == "paired with block_r14_i80_k3_e200_o80_s1_se0_HS, 10 + 10 calls x 8"
    sized = {k: all(0 < t["small"]["ms"] < t["small"]["large_ms"] and 0 <= t["small"]["w"] <= 1 for t in e["passes"])
             for k, e in data["entries"].items() if k.startswith("net_")}
    assert sized and all(sized.values())  # and with the small probe, shipped and timed there
    assert data["calibration"]["networks"] == "paired with each probe, 10 + 10 calls x 8, weighted by size"
    assert data["reference"]["small_large"] == pytest.approx(statistics.median(
        t["small"]["ms"] / t["small"]["large_ms"] for k, e in data["entries"].items() if k.startswith("net_")
        for t in e["passes"]), abs=1e-5)
    timed = [w for _, _, w in lock_log(ssh_env)[before:]]
    assert timed.count("acquired") == timed.count("released") >= 2  # the runner timed under its lock

    p = run_cli("measure.lut", "validate", *args, "n=3")
    assert p.returncode == 0, p.stderr
    assert "within ±5%" in p.stdout
    rows = next(path.parent.glob("validate_tiny_*.csv")).read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("arch,predicted_ms,measured_ms")


def test_an_executorch_table_is_lowered_here_and_timed_on_the_target(ssh_env, tmp_path):
    """latency.backend=executorch over SSH: the host lowers each entry to a .pte program, the target's runner
    (here this interpreter, which has the ExecuTorch runtime) times it; the table records that runtime."""
    from measure.executorch import available
    if not available():
        pytest.skip("the executorch extra is not installed (.ci/run installs it)")
    args = [f"space_file={space_file(tmp_path)}", f"results_dir={tmp_path}", *FAST, "latency.backend=executorch",
            *target_args(ssh_env, sys.executable)]
    p = run_cli("measure.lut", "build", *args)
    assert p.returncode == 0, p.stderr
    assert "8 entries and 2 calibration networks (17 timed now)" in p.stdout
    data = json.loads(next((tmp_path / "lut").rglob("executorch_*.json")).read_text())
    assert data["backend"] == "executorch" and data["target"]["runtime"].startswith("executorch ")
    assert all(len(e["passes"]) == 2 and e["p10"] > 0 for e in data["entries"].values())


def test_a_search_measures_a_missing_entry_on_the_target(ssh_env, target_python, tmp_path):
    from measure.remote import open_target
    from measure.table import LatencyTable

    lut = tmp_path / "target.json"
    table = LatencyTable(lut, input_size=32, warmup=1, repeats=5, max_rounds=1,
                         target=open_target(ssh_env.url, str(target_python)))
    table.calibrate()  # calibration entries only: every trial of v3_small lacks some
    known = set(json.loads(lut.read_text())["entries"])
    before = len(lock_log(ssh_env))
    p = run_cli("search.run", "+space=v3_small", "data=synthetic", "data.n_train=64", "data.n_holdout=32",
                "train.batch_size=32", "train.steps=2", "train.bn_recal_batches=1", "sampler.n_startup_trials=2",
                "progress=false", "n_trials=1", f"results_dir={tmp_path}", f"latency.table={lut}",
                "latency.measure_missing=true", "latency.input_size=32", "latency.warmup=1", "latency.repeats=5", "latency.max_rounds=1",
                *target_args(ssh_env, target_python))
    assert p.returncode == 0, p.stderr
    data = json.loads(lut.read_text())
    new = set(data["entries"]) - known
    assert any(k.startswith("block_r") for k in new)  # the trial's blocks, timed ...
    assert "acquired" in [w for _, _, w in lock_log(ssh_env)[before:]]  # ... on the target
    assert data["target"]["machine"] == data["machine"]


def test_measured_latency_times_whole_networks_on_the_target(ssh_env, target_python, tmp_path):
    from measure import latency_model
    from space import ArchSpec, BlockSpec

    tiny = ArchSpec(8, (BlockSpec(3, 16, 8), BlockSpec(3, 24, 16, True, "HS", 2)), 96, 32)
    cfg = {"source": "measured", "input_size": 32, "warmup": 1, "repeats": 5, "max_rounds": 1,
           "target": ssh_env.url, "target_python": str(target_python)}
    model = latency_model(cfg, tmp_path)  # as NetAdapt builds its end-to-end model
    assert "set the reference speed" in model.prepare()  # the unit: probe timings made on the target
    before = len(lock_log(ssh_env))
    assert model(tiny) > 0 and model.raw_ms(tiny) > 0
    assert "acquired" in [w for _, _, w in lock_log(ssh_env)[before:]]
    data = json.loads(model.table.path.read_text())
    assert model.table.path.parent.name == data["target"]["machine"] and data["entries"] == {}
    assert model.describe()["machine"] == data["target"]["machine"]


@pytest.mark.parametrize("cut", ["connection", "runner"])
def test_a_build_cut_mid_batch_keeps_the_received_timings_and_a_rerun_resumes(ssh_env, target_python, tmp_path, cut):
    # Slow entries (many repeats) so the second pass's batch is still running when the connection drops.
    args = [f"space_file={space_file(tmp_path)}", f"results_dir={tmp_path}", "latency.input_size=32",
            "latency.warmup=1", "latency.repeats=3000", "latency.max_rounds=1", "latency.confirm=0",  # 2 passes each
            *target_args(ssh_env, target_python)]
    before = len(lock_log(ssh_env))
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "measure.lut", "build", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The event: pass 1 saved (every entry has a timing; the unit's own batches, one or more, time none),
        # then a runner acquires the target's lock after that save: pass 2's batch.
        saved_at, held = None, []
        while not held:
            path = next((tmp_path / "lut").rglob("*.json"), None)
            if saved_at is None and path is not None:
                mtime, entries = path.stat().st_mtime, json.loads(path.read_text()).get("entries", {})
                if len(entries) == 17 and all(len(e["passes"]) == 1 for e in entries.values()):
                    saved_at = mtime
            if saved_at is not None:
                held = [pid for at, pid, w in lock_log(ssh_env)[before:] if w == "acquired" and at > saved_at]
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        if cut == "connection":  # the network goes: every sshd session is killed
            assert ssh_env.drop_connections() >= 1
        else:  # the runner dies on the target (out of memory, say)
            os.kill(held[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.strip().splitlines()
    # Killing the sshd sessions can take the runner down before ssh sees the connection go: either report
    # is right for a lost network; a runner killed alone is always reported as the runner's death.
    expected = ("error: the connection to 127.0.0.1", "error: the runner on ") if cut == "connection" \
        else ("error: the runner on ",)
    assert proc.returncode == 2 and lines[-1].startswith(expected), err
    assert "rerun the same command to resume" in lines[-1]
    path = next((tmp_path / "lut").rglob("*.json"))
    before_rerun = json.loads(path.read_text())
    kept = before_rerun["entries"]
    assert len(kept) == 17 and all(len(e["passes"]) >= 1 for e in kept.values())  # pass 1 was saved
    assert before_rerun["reference"]["provisional"]  # cut before the first calibration

    p = run_cli("measure.lut", "build", *args)
    assert p.returncode == 0, p.stderr
    after = json.loads(path.read_text())
    data = after["entries"]
    assert all(len(e["passes"]) == 2 for e in data.values())
    # resumed, not redone: the kept pass rescaled as the first calibration settles the units (measure.table): an
    # entry's by the block unit's change; a network's by the unit's
    # and converted by both probes: by the probes' ratio timed with the first unit, then by the build's networks'
    assert before_rerun["reference"]["small_from"] == 0 and after["reference"]["small_from"] > 0
    k = after["reference"]["ms"] / before_rerun["reference"]["ms"]
    kb = after["reference"]["block"]["ms"] / before_rerun["reference"]["block"]["ms"]  # the block unit, settled too
    assert before_rerun["reference"]["block"]["provisional"] and "provisional" not in after["reference"]["block"]
    for key, t in ((key, kept[key]["passes"][0]) for key in kept):
        now = data[key]["passes"][0]
        assert now["paired"]  # every entry was timed paired on the target: with the reference block or the probes
        if not key.startswith("net_"):
            assert now["factor"] == round(t["factor"] * kb, 5)
            assert now["p10"] == pytest.approx(t["p10"] * kb, rel=1e-4, abs=2e-5)
            continue
        assert {f: v for f, v in now["small"].items() if f != "c"} == {f: v for f, v in t["small"].items() if f != "c"}
        assert now["factor"] == round(t["factor"] * k, 5)
        assert now["p10"] / now["small"]["c"] == pytest.approx(t["p10"] / t["small"]["c"] * k, rel=1e-4, abs=2e-5)
    timed_now = int(p.stdout.split(" timed now)")[0].rsplit("(", 1)[1])
    assert timed_now == sum(2 - len(e["passes"]) for e in kept.values()) > 0


def test_two_workers_on_one_target_never_time_at_once(ssh_env, target_python, tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    before = len(lock_log(ssh_env))
    lock_file = ssh_env.target_dir / "timing.lock"
    with open(lock_file, "a") as held:  # hold the target busy until both workers queue behind it
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [subprocess.Popen([sys.executable, "-m", "measure.lut", "build", f"space_file={space_file(tmp_path)}",
                                   f"results_dir={tmp_path / f'host{i}'}", *FAST, *target_args(ssh_env, target_python)],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
        while [w for _, _, w in lock_log(ssh_env)[before:]].count("waiting") < 2:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        fcntl.flock(held, fcntl.LOCK_UN)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    log = lock_log(ssh_env)[before:]
    spans = {}
    for t, pid, what in log:
        if what in ("acquired", "released"):
            spans.setdefault(pid, {})[what] = t
    spans = sorted((s["acquired"], s["released"]) for s in spans.values())
    assert len(spans) >= 4  # two workers, two passes each at least
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # never two timings at once


# -- failures: one line, exit 2 --------------------------------------------------------------------------
def _build(tmp_path, *extra):
    return run_cli("measure.lut", "build", f"space_file={space_file(tmp_path)}", f"results_dir={tmp_path}", *FAST,
                   *extra, timeout=120)


def test_an_unknown_host_is_refused_with_the_fix(loopback, target_python, tmp_path, monkeypatch):
    monkeypatch.setenv("BNECK_SSH_CONFIG", str(loopback.config_with("empty", "")))
    line = one_error_line(_build(tmp_path, *target_args(loopback, target_python)))
    assert "is not in your known_hosts" in line and f"ssh -p {loopback.port}" in line
    assert not (tmp_path / "lut").exists()


def test_a_changed_host_key_is_refused_with_the_fix(loopback, target_python, tmp_path, monkeypatch):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    monkeypatch.setenv("BNECK_SSH_CONFIG", str(loopback.config_with("changed", f"[127.0.0.1]:{loopback.port} {kind} {key}\n")))
    line = one_error_line(_build(tmp_path, *target_args(loopback, target_python)))
    assert "host key of 127.0.0.1 port" in line and "has changed" in line and "ssh-keygen -R" in line


def test_a_refused_key_and_an_unreachable_port_are_one_line_each(loopback, target_python, tmp_path, monkeypatch):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    config = tmp_path / "ssh_config"
    config.write_text(loopback.ssh_config.read_text().replace(str(loopback.root / "user_key"), str(stranger)))
    monkeypatch.setenv("BNECK_SSH_CONFIG", str(config))
    line = one_error_line(_build(tmp_path, *target_args(loopback, target_python)))
    assert "refused your key" in line and "never sends a password" in line
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    line = one_error_line(_build(tmp_path, f"latency.target=ssh://{loopback.user}@127.0.0.1:{closed}"))
    assert f"cannot reach 127.0.0.1 port {closed}" in line and "Connection refused" in line


def test_a_target_without_the_runtime_is_refused_with_the_fix(ssh_env, tmp_path_factory, tmp_path):
    numpy_only = ssh_target.target_python(tmp_path_factory.mktemp("numpy-only") / "venv", ("numpy", "numpy.libs"))
    line = one_error_line(_build(tmp_path, *target_args(ssh_env, numpy_only)))
    assert "cannot import the onnxruntime runtime" in line and "pip install numpy and onnxruntime" in line
    line = one_error_line(_build(tmp_path, *target_args(ssh_env, "/no/such/python3")))
    assert "latency.target_python=/no/such/python3 was not found" in line


@pytest.mark.parametrize("overrides,words", [
    (["latency.target=ssh://pi:hunter2@raspberrypi.local"], "holds a password"),
    (["latency.target=raspberrypi.local"], "must be local or ssh://user@host[:port]"),
    (["latency.target=ssh://pi@host:99999"], "must be local or ssh://user@host[:port]"),
    (["latency.target=ssh://pi@host", "latency.target_python='my python'"], "command or path without spaces"),
])
def test_a_bad_target_setting_is_one_line_and_never_shows_a_password(tmp_path, overrides, words):
    p = _build(tmp_path, *overrides)
    line = one_error_line(p)
    assert words in line and "hunter2" not in p.stderr + p.stdout


def test_the_torch_backend_cannot_time_on_a_target(tmp_path):
    line = one_error_line(_build(tmp_path, "latency.target=ssh://pi@raspberrypi.local", "latency.backend=torch"))
    assert "latency.backend=torch cannot time on a target" in line
