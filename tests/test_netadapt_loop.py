"""The NetAdapt loop end to end on a tiny network: budget, results, kill-and-resume, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

import measure
from core.cli import UsageError, run
from netadapt.report import trajectory_info
from netadapt.run import main
from netadapt.start import resolve_start
from plots import draw_trajectory
from space import REFERENCES, V3_SMALL, build_model, format_arch, parse_arch

ROOT = Path(__file__).resolve().parent.parent
TINY = "stem8 k3_e16_c8_re k3_e32_c16_s2_re k3_e48_c16_re k3_e64_c24_s2_se_hs k3_e72_c24_se_hs last96 head64"
# Real training and real (briefly timed) latency, kept small: MACs are the resource, so the
# proposals and the stopping point do not depend on timing noise.
QUICK = [f"start={TINY}", "data=synthetic", "data.input_size=16", "data.n_train=64", "data.n_holdout=32",
         "resource=macs", "latency=measured", "latency.input_size=32", "latency.repeats=5", "latency.warmup=1",
         "pretrain_epochs=2", "long_epochs=1", "short_steps=3", "step=0.05", "threads=1", "progress=false",
         "train.batch_size=32", "train.bn_recal_batches=1"]


def history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def run_dir(results: Path) -> Path:
    (folder,) = (results / "netadapt").iterdir()
    return folder


def test_loop_stops_at_the_budget_and_writes_every_result(tmp_path, capsys):
    assert main(QUICK + ["budget=0.8", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    folder = run_dir(tmp_path)
    assert f"results: {folder}/" in out
    h = history(folder)
    assert [r["iteration"] for r in h] == list(range(len(h))) and len(h) >= 2
    target = 0.8 * h[0]["cost"]
    assert h[-1]["cost"] <= target < h[-2]["cost"]  # stopped exactly when the budget was met
    delta = 0.05 * h[0]["cost"]
    for prev, rec in zip(h, h[1:]):
        assert rec["proposals"] and rec["arch"] in [p["arch"] for p in rec["proposals"]]
        assert all(prev["cost"] - p["cost"] >= delta for p in rec["proposals"])
        for p in rec["proposals"]:  # each proposal's figures are its own network's (resource=macs, at 32 px)
            assert p["cost"] == p["macs"] == measure.count_macs(parse_arch(p["arch"]), 32), p["label"]
            assert p["latency_ms"] > 0 and 0 <= p["top1"] <= 1
        # ratio rule: the kept one has the best accuracy change per MAC cut
        ratio = lambda p, prev=prev: (p["top1"] - prev["top1"]) / (prev["cost"] - p["cost"])  # noqa: E731
        assert ratio(next(p for p in rec["proposals"] if p["arch"] == rec["arch"])) == max(map(ratio, rec["proposals"]))
    final = parse_arch(str(folder / "final.json"))
    assert format_arch(final) == h[-1]["arch"]
    model = build_model(final, num_classes=4)
    model.load_state_dict(torch.load(folder / "final.pt", weights_only=True))
    session = ort.InferenceSession(str(folder / "final.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 16, 16)
    logits = session.run(None, {"input": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(logits), model.eval()(x).detach(), rtol=1e-3, atol=1e-4)
    base = json.loads((folder / "baseline.json").read_text())
    assert {"multiplier", "arch", "latency_ms", "macs", "top1"} <= set(base)
    assert base["cost"] <= h[-1]["cost"] and 0 < base["multiplier"] < 1
    summary = json.loads((folder / "summary.json").read_text())
    assert base["train_steps"] == summary["final"]["train_steps"]  # same training budget
    assert (folder / "trajectory.png").stat().st_size > 1000
    # Both references, costed by the run's latency model and at its input size (not trained).
    refs = summary["references"]
    assert sorted(refs) == ["v3_large", "v3_small"]
    for name, arch in REFERENCES.items():
        assert refs[name]["latency_ms"] > 0 and refs[name]["macs"] == measure.count_macs(arch, input_size=32)
    info = trajectory_info(h, summary, base, "t")  # the plot, redrawn from the files
    assert info.references == tuple((n, refs[n]["latency_ms"]) for n in ("v3_large", "v3_small"))
    # Both networks (and the start) timed end to end, the run's own figure kept beside each.
    m = summary["measured"]
    assert m["latency_model"].startswith("measured:") and m["predicted_by"] == summary["latency_model"]
    assert m["final"]["predicted_ms"] == summary["final"]["latency_ms"] and m["baseline"]["predicted_ms"] == base["latency_ms"]
    assert all(m[k]["measured_ms"] > 0 for k in ("start", "final", "baseline"))
    assert m["baseline_over_final"] == round(m["baseline"]["measured_ms"] / m["final"]["measured_ms"], 4)
    assert m["top1_final_minus_baseline"] == round(summary["final"]["top1"] - base["top1"], 6)
    assert info.measured == (("final", m["final"]["measured_ms"], summary["final"]["top1"]),
                             ("baseline", m["baseline"]["measured_ms"], base["top1"]))
    assert f"measured end to end ({m['latency_model']})" in out and "baseline / final measured latency" in out


def test_trajectory_marks_only_references_with_a_latency():
    history = [{"latency_ms": 2.0, "top1": 0.5}, {"latency_ms": 1.5, "top1": 0.45}]
    summary = {"references": {"v3_small": {"latency_ms": 1.2, "macs": 56_000_000},
                              "v3_large": {"latency_ms": None, "macs": 217_000_000}}}  # its table entries lacking
    info = trajectory_info(history, summary, None, "t")
    assert info.references == (("v3_small", 1.2),)
    assert trajectory_info(history, {}, None, "t").references == ()  # a summary from before references
    assert draw_trajectory(info)[:4] == b"\x89PNG"


def test_no_proposal_reaching_the_cut_stops_with_a_message(tmp_path, capsys):
    assert main(QUICK + ["step=0.9", "budget=0.05", "baseline=false", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "netadapt: no proposal cuts" in out and "lower step or raise the budget" in out
    folder = run_dir(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["reached_budget"] is False and summary["stopped"].startswith("no proposal")
    assert len(history(folder)) == 1 and (folder / "final.onnx").is_file()


def test_killed_run_resumes_without_gaps_or_repeats(tmp_path):
    cmd = [sys.executable, "-m", "netadapt.run", *QUICK, "budget=0.7", "baseline=false", f"results_dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            hist = next((tmp_path / "netadapt").glob("*/history.jsonl"), None)
            if hist and len(hist.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    folder = run_dir(tmp_path)
    before = history(folder)
    assert len(before) >= 2
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-800:]
    assert f"resuming {folder} after iteration {before[-1]['iteration']}" in done.stdout
    after = history(folder)
    assert [r["iteration"] for r in after] == list(range(len(after)))
    assert after[:len(before)] == before and after[-1]["cost"] <= 0.7 * after[0]["cost"]
    assert (folder / "final.pt").is_file() and not (folder / "baseline.json").exists()


@pytest.mark.parametrize("args, message", [
    (["start=v3_tiny"], "unknown start 'v3_tiny'"),
    (["start=stem8 k4_e16_c8_re last96 head64"], "kernel"),
    (["budget=1.0"], "budget=1 must be"),
    (["budget=0"], "budget=0 must be"),
    (["budget_ms=5"], "budget_ms needs resource=latency"),
    (["resource=latency", "budget_ms=1000"], "below the start latency"),
    (["weights=/nonexistent/w.pt"], "weights file /nonexistent/w.pt does not exist"),
    (["select=best"], "unknown select 'best': use one of ratio, accuracy"),
    (["start=/nonexistent/study:3"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        run(main, QUICK + [f"results_dir={tmp_path}"] + args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "netadapt").exists()


def test_mismatched_weights_and_changed_settings_exit_2_and_leave_results(tmp_path, capsys):
    wrong = tmp_path / "v3_small.pt"
    torch.save(build_model(V3_SMALL, 4).state_dict(), wrong)
    with pytest.raises(SystemExit) as e:
        run(main, QUICK + [f"results_dir={tmp_path}", f"weights={wrong}"])
    assert e.value.code == 2 and "do not fit the start network" in capsys.readouterr().err
    assert not (tmp_path / "netadapt").exists()
    # a finished run asked again with other settings is refused, byte for byte untouched
    right = tmp_path / "tiny.pt"
    torch.save(build_model(parse_arch(TINY), 4).state_dict(), right)
    common = QUICK + [f"results_dir={tmp_path}", f"weights={right}", "pretrain_epochs=0", "budget=0.9",
                      "run_name=r", "baseline=false"]
    assert main(common) == 0
    folder = tmp_path / "netadapt" / "r"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(SystemExit) as e:
        run(main, common + ["short_steps=4"])
    assert e.value.code == 2 and "other settings (short_steps)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def test_a_run_whose_latency_table_changed_exits_2_unless_accepted(tmp_path, capsys):
    table = tmp_path / "t.json"  # latency=measured: the record rests on the table's unit
    common = QUICK + [f"results_dir={tmp_path}", f"latency.table={table}", "pretrain_epochs=0", "budget=0.9",
                      "run_name=r", "baseline=false", "step=0.5"]  # no proposal cuts half: no iteration
    assert main(common) == 0
    folder = tmp_path / "netadapt" / "r"
    record = json.loads((folder / "run.json").read_text())["latency"]
    assert record["source"] == "measured" and record["table"] == str(table) and record["reference"]["ms"] > 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["latency"] == record
    # measured: the wall-clock figure as timed beside the converted one, wherever a latency is written
    assert summary["start"]["latency_raw_ms"] > 0 and summary["final"]["latency_raw_ms"] > 0
    assert all(r["latency_raw_ms"] > 0 for r in summary["references"].values())
    data = json.loads(table.read_text())
    data["reference"]["ms"] *= 1.1  # another unit: the table was rebuilt since
    table.write_text(json.dumps(data))
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(SystemExit) as e:
        run(main, common)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "latency table of" in err and "changed since the run started" in err
    assert "reference speed" in err and "latency.accept_changed=true" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # untouched
    assert main(common + ["latency.accept_changed=true"]) == 0
    saved = json.loads((folder / "run.json").read_text())
    assert saved["latency_history"] == [record] and saved["latency"]["hash"] != record["hash"]
    assert main(common) == 0  # accepted once: the run is bound to the new table now


def test_start_from_a_study_trial(tmp_path):
    study = tmp_path / "search" / "v3_small" / "digits-multi"
    study.mkdir(parents=True)
    (study / "trials.csv").write_text(
        "number,state,arch,top1,latency_ms,macs\n"
        f"0,COMPLETE,{format_arch(V3_SMALL)},0.9,1.0,100\n"
        f"1,COMPLETE,{TINY},0.8,0.5,50\n"
        "2,FAIL,,,,\n")
    arch, name = resolve_start(f"{study}:1")
    assert arch == parse_arch(TINY) and name == "digits-multi-t1"
    assert resolve_start(None, study=str(study), trial=0) == (V3_SMALL, "digits-multi-t0")
    with pytest.raises(UsageError, match="FAIL"):
        resolve_start(f"{study}:2")
    with pytest.raises(UsageError, match="no trial 7"):
        resolve_start(f"{study}:7")



def fake_fit(model, data, cfg, **_):
    """No training: a top-1 drawn from the network's shapes (same network, same figure, any run)."""
    import random

    from train import FitResult

    shapes = str([tuple(v.shape) for v in model.state_dict().values()])
    return FitResult(round(random.Random(shapes).uniform(0.3, 0.9), 6), 1.0, cfg.steps or 1, 0.0, 1.0)


class MacsLatency(measure.LatencyModel):
    """A stand-in 'measured' latency: MACs at 32 px in millions (instant, the same every call)."""

    source, name = "measured", "measured:fake"

    def __call__(self, arch):
        return measure.count_macs(arch, 32) / 1e6


def test_select_accuracy_keeps_the_proposal_with_the_best_top1(tmp_path, monkeypatch):
    monkeypatch.setattr("train.estimator.fit", fake_fit)  # top-1 figures that tell the two rules apart
    assert main(QUICK + ["select=accuracy", "budget=0.6", "baseline=false", f"results_dir={tmp_path}"]) == 0
    h = history(run_dir(tmp_path))
    assert len(h) >= 3 and h[-1]["cost"] <= 0.6 * h[0]["cost"] < h[-2]["cost"]
    differs = 0
    for prev, rec in zip(h, h[1:]):
        props = rec["proposals"]
        assert props and len({p["top1"] for p in props}) == len(props)  # no ties to break
        best = max(props, key=lambda p: p["top1"])
        assert (rec["arch"], rec["top1"], rec["cost"]) == (best["arch"], best["top1"], best["cost"])
        ratio = lambda p, prev=prev: (p["top1"] - prev["top1"]) / (prev["cost"] - p["cost"])  # noqa: E731
        differs += max(props, key=ratio)["arch"] != rec["arch"]
    assert differs  # at least one iteration where the ratio rule would have kept another proposal


# A run killed by SIGKILL the moment it reports iteration 1 (so right after iteration 1 is durable):
# the kill is triggered by the run's own output, never by a clock.
KILL_AFTER_ITERATION_1 = """
import os, signal, sys
import netadapt.loop as loop
if os.environ.get("BNECK_TEST_MACS_TIMER"):
    import tests.test_netadapt_loop as t
    t.macs_timer(float(os.environ["BNECK_TEST_MACS_TIMER"]))
run = loop.run_netadapt
def log(msg):
    print(msg, flush=True)
    if msg.startswith("iteration 1:"):
        os.kill(os.getpid(), signal.SIGKILL)
loop.run_netadapt = lambda cfg, progress=True: run(cfg, progress=progress, log=log)
from netadapt.run import main
main(sys.argv[1:])
"""


def macs_timer(unit: float, patch=None):
    """End-to-end timings stood in by MACs (millions) x ``unit``, one unit per process, as a machine's
    speed differs between a run and its resume: a resume that re-measured its start would get another
    start cost, target and delta. Real timings of a tiny network under a parallel suite are noisy
    enough that iteration 0 may find no proposal cutting 2%, and the kill would never come."""
    from measure.table import LatencyTable

    def fake(self, archs, progress=None):
        return [{"ms": unit * measure.count_macs(a, self.input_size) / 1e6,
                 "as_timed_ms": unit * measure.count_macs(a, self.input_size) / 1e6} for a in archs]

    if patch is None:
        LatencyTable.measure_networks = fake
    else:
        patch.setattr(LatencyTable, "measure_networks", fake)


@pytest.mark.parametrize("source", ["lut", "measured"])
def test_killed_latency_run_resumes_with_the_first_runs_start_target_and_delta(tmp_path, capsys, monkeypatch, source):
    # Latency is the resource, at 160 px (tiny blocks at 32 px are mostly call overhead: no proposal
    # would cut 2%); with lut, the table is calibrated and filled by the first run (real timings: the
    # resumed run reads the same table). With measured, end-to-end timings are MACs in a per-process
    # unit (`macs_timer`), so whether a proposal cuts delta does not depend on the machine's noise.
    args = [a for a in QUICK if not a.startswith(("resource=", "latency"))] + [
        f"latency={source}", "latency.input_size=160", "latency.repeats=5", "latency.warmup=1",
        f"latency.table={tmp_path / 'lut.json'}", "step=0.02", "budget=0.9", "short_steps=2", "pretrain_epochs=1",
        "baseline=false", "run_name=r", f"results_dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    if source == "measured":
        env["BNECK_TEST_MACS_TIMER"] = "1.0"
        macs_timer(1.01, monkeypatch)  # the resume (this process) times 1% slower
    first = subprocess.run([sys.executable, "-c", KILL_AFTER_ITERATION_1, *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == -signal.SIGKILL, (first.stdout[-800:], first.stderr[-800:])
    assert first.stdout.splitlines()[-1].startswith("iteration 1: ")
    folder = tmp_path / "netadapt" / "r"
    before = history(folder)
    assert [r["iteration"] for r in before] == [0, 1] and before[0]["resource"] == "latency"
    start_ms, target, delta = before[0]["cost"], 0.9 * before[0]["cost"], 0.02 * before[0]["cost"]
    assert start_ms == pytest.approx(before[0]["latency_ms"], abs=1e-5)  # the cost is the latency (unrounded)

    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"resuming {folder} after iteration 1" in out and "iteration 0:" not in out
    after = history(folder)
    assert after[:2] == before and [r["iteration"] for r in after] == list(range(len(after)))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["resource"] == "latency" and summary["start"]["latency_ms"] == before[0]["latency_ms"]
    assert summary["budget"] == target  # the first run's target, not one re-costed on resume
    assert summary["reached_budget"] == (after[-1]["cost"] <= target)
    for prev, rec in zip(after, after[1:]):  # every kept step, before and after the kill, cut the first run's delta
        assert prev["cost"] - rec["cost"] >= delta
        assert all(prev["cost"] - p["cost"] >= delta for p in rec["proposals"])
    if summary["stopped"]:  # stopped short: the message quotes the first run's delta and target
        assert f"no proposal cuts {delta:.4g} ms" in summary["stopped"] and f"budget {target:.4g}" in summary["stopped"]
    else:
        assert after[-1]["cost"] <= target < after[-2]["cost"]


def test_proposals_are_scored_on_holdout_only_and_the_kept_networks_reported_on_test(tmp_path, monkeypatch):
    """The test split raises if read while a proposal is finetuned and scored; it is read for each kept
    network (start, every iteration's choice, final, baseline) and nothing else."""
    import dataclasses

    import train
    from train.estimator import TrainEstimator

    monkeypatch.setattr("train.estimator.fit", fake_fit)  # no training: the split reads are the point

    class GuardedTest(torch.utils.data.Dataset):
        def __init__(self, inner):
            self.inner, self.blocked, self.passes = inner, None, 0

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            if self.blocked:
                raise AssertionError(f"the test split was read while scoring {self.blocked}")
            self.passes += i == 0
            return self.inner[i]

    guard = {}
    load = train.load_data

    def load_data(cfg):
        split = load(cfg)
        guard["test"] = GuardedTest(split.test)
        return dataclasses.replace(split, test=guard["test"])

    real_train = TrainEstimator.train

    def guarded_train(self, model, label, **kw):
        guard["test"].blocked = label if label.startswith("iteration") else None
        try:
            return real_train(self, model, label, **kw)
        finally:
            guard["test"].blocked = None

    monkeypatch.setattr(train, "load_data", load_data)
    monkeypatch.setattr(TrainEstimator, "train", guarded_train)
    monkeypatch.setattr(measure, "latency_model", lambda cfg, results_dir="results": MacsLatency())  # no timing
    assert main(QUICK + ["budget=0.85", "step=0.1", f"results_dir={tmp_path}"]) == 0
    folder = run_dir(tmp_path)
    h = history(folder)
    assert len(h) >= 2 and all(len(r["proposals"]) > 1 for r in h[1:])  # proposals were scored, several each time
    assert all(isinstance(r["test_top1"], float) for r in h)
    assert all("test_top1" not in p for r in h for p in r["proposals"])
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["protocol"]["selection"] == "holdout"
    assert guard["test"].passes == len(h) + 2  # each kept network, the final one and the baseline: once each


def _untimed(x):
    """A history without what the clock decides (seconds): what the iterations chose and scored."""
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k != "seconds"}
    return x


@pytest.fixture(scope="module")
def fresh_b7(tmp_path_factory):
    """A finished run to budget 0.7 with MACs as the resource; its latency figures are MACs
    (``macs_timer``): they are not what continue_from is about, and ONNX exports would take most of it."""
    results = tmp_path_factory.mktemp("continue")
    with pytest.MonkeyPatch.context() as mp:
        macs_timer(1.0, mp)
        assert main(CONTINUE + ["budget=0.7", "run_name=b7", f"results_dir={results}"]) == 0
    return results


CONTINUE = QUICK + ["baseline=false", "long_epochs=0"]


def test_continue_from_a_higher_budget_gives_the_fresh_runs_iterations_without_redoing_them(
        fresh_b7, tmp_path, capsys, monkeypatch):
    """A budget sweep trains each iteration once: the 0.7 run takes the 0.9 run's iterations and goes on,
    and ends with the same history as a fresh 0.7 run (real training, seeded per iteration)."""
    macs_timer(1.0, monkeypatch)
    common = CONTINUE + [f"results_dir={tmp_path}"]
    assert main(common + ["budget=0.9", "run_name=b9"]) == 0
    first = history(tmp_path / "netadapt" / "b9")
    capsys.readouterr()
    cont = common + ["budget=0.7", "run_name=b7", f"continue_from={tmp_path / 'netadapt' / 'b9'}"]
    assert main(cont) == 0
    out = capsys.readouterr().out
    assert f"iterations 0-{first[-1]['iteration']} taken from {tmp_path / 'netadapt' / 'b9'}" in out
    assert "iteration 0:" not in out and f"iteration {first[-1]['iteration'] + 1}:" in out  # no pretraining again
    continued = history(tmp_path / "netadapt" / "b7")
    assert continued[:len(first)] == first and len(continued) > len(first)
    fresh = history(fresh_b7 / "netadapt" / "b7")
    assert _untimed(fresh) == _untimed(continued) and len({r["top1"] for r in fresh}) > 1  # trained, not constant
    summary = json.loads((tmp_path / "netadapt" / "b7" / "summary.json").read_text())
    assert summary["budget"] == 0.7 * first[0]["cost"] and summary["reached_budget"]
    assert main(cont) == 0  # the same command again: the finished run, not a second copy
    assert history(tmp_path / "netadapt" / "b7") == continued


@pytest.mark.parametrize("args, message", [
    (["budget=0.6", "continue_from={missing}"], "holds no NetAdapt run (no readable run.json)"),
    (["budget=0.6", "short_steps=4", "continue_from={b7}"], "was run with other settings (short_steps): only budget"),
    (["budget=0.9", "continue_from={b7}"], "went past this run's budget"),
])
def test_continue_from_refuses_another_run_with_one_line(fresh_b7, tmp_path, capsys, monkeypatch, args, message):
    macs_timer(1.0, monkeypatch)
    names = {"missing": tmp_path / "nothing", "b7": fresh_b7 / "netadapt" / "b7"}
    before = {p.name: p.read_bytes() for p in names["b7"].iterdir()}
    with pytest.raises(SystemExit) as e:
        # the source's results_dir: the same latency table (another table is refused, as for a resume)
        run(main, CONTINUE + [f"results_dir={fresh_b7}", "run_name=new"] + [a.format(**names) for a in args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (fresh_b7 / "netadapt" / "new").exists()
    assert {p.name: p.read_bytes() for p in names["b7"].iterdir()} == before  # the source is untouched
