"""On a GPU (``pytest -m cuda``; skipped where torch sees no CUDA device, the only skips allowed): a small search,
a NetAdapt iteration, a supernet step under torchrun with one process, and fp32 training that agrees with the
CPU's within a stated tolerance. ``benchmarks/device/gpu.sh tests`` runs them on a lent GPU host."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SEARCH = ["+space=v3_small", "data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32",
          "train.steps=5", "train.bn_recal_batches=1", "latency=measured", "latency.input_size=32",
          "latency.warmup=1", "latency.repeats=5", "sampler.n_startup_trials=2", "progress=false",
          "companions=false"]
TINY = "stem8 k3_e16_c8_re k3_e32_c16_s2_re k3_e48_c16_re k3_e64_c24_s2_se_hs k3_e72_c24_se_hs last96 head64"


def _env() -> dict:
    return dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(REPO))


def test_a_small_search_trains_its_trials_on_the_gpu_and_records_it(tmp_path):
    from search.run import main

    args = [*SEARCH, "n_trials=3", "train.device=cuda", "train.precision=bf16", "train.channels_last=true",
            f"results_dir={tmp_path}"]
    assert main(args) == 0
    with open(tmp_path / "search/v3_small/synthetic-multi/trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)
    assert all(r["device"] == "cuda:0" for r in rows)  # one worker, one GPU: slot 0
    assert (tmp_path / "search/v3_small/synthetic-multi/gpu-slots/0.lock").is_file()


def test_a_netadapt_iteration_runs_on_the_gpu(tmp_path):
    from netadapt.run import main

    args = [f"start={TINY}", "data=synthetic", "data.input_size=16", "data.n_train=64", "data.n_holdout=32",
            "resource=macs", "latency=measured", "latency.input_size=32", "latency.repeats=5", "latency.warmup=1",
            "pretrain_epochs=1", "long_epochs=1", "short_steps=3", "step=0.05", "max_iterations=1",
            "baseline=false", "progress=false", "train.batch_size=32", "train.bn_recal_batches=1",
            "train.device=cuda", f"results_dir={tmp_path}"]
    assert main(args) == 0
    folder = next((tmp_path / "netadapt").iterdir())
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == [0, 1] and history[1]["proposals"]
    # Saved for the CPU: the weights load without map_location.
    state = torch.load(folder / "final.pt", weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())


def test_a_supernet_step_under_torchrun_with_one_process(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "search.supernet", "+space=v3_small", "data=synthetic", "data.n_train=32", "data.n_holdout=16",
           "data.n_test=16", "accuracy.batch_size=16", "accuracy.steps=2", "accuracy.checkpoint_every=1",
           "accuracy.bn_recal_batches=1", "train.device=cuda", "train.precision=bf16", "progress=false",
           f"results_dir={tmp_path}"]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = torch.load(tmp_path / "supernet/v3_small/synthetic/supernet.pt", weights_only=True)
    assert state["done"] and state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert "trained (2 steps)" in r.stdout


# fp32 on the GPU computes the same training as on the CPU up to float rounding (cuDNN's kernels, TF32 in
# convolutions by PyTorch's default): after 8 steps the losses agree within 0.02 and holdout top-1 within
# 3 of its 60 images.
TOLERANCE = {"loss": 0.02, "train_loss": 0.02, "top1": 3 / 60}


def test_fp32_on_the_gpu_agrees_with_the_cpu_within_the_stated_tolerance():
    from space import SearchSpace, build_model
    from train import TrainConfig, fit, load_data

    data = load_data({"name": "cluttered", "input_size": 32, "n_train": 200, "n_holdout": 60, "n_test": 60})
    got = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = build_model(SearchSpace.load("v3_small").reference, num_classes=10)
        r = fit(model, data, TrainConfig(steps=8, batch_size=32, device=device, bn_recal_batches=3))
        got[device] = {"loss": r.loss, "train_loss": r.train_loss, "top1": r.top1}
        assert next(model.parameters()).device.type == device  # it stays where it trained
    for k, tol in TOLERANCE.items():
        assert abs(got["cpu"][k] - got["cuda"][k]) <= tol, (k, got)
