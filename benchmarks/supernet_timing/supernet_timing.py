"""Time accuracy=supernet against accuracy=train on one dataset: supernet training, seconds per scored
trial, trials per CPU-hour. Wall and CPU (process) seconds are both reported: on a shared machine the
wall clock measures the neighbours too.

    python -m benchmarks.supernet_timing.supernet_timing [steps] [n_points] [n_train_points]   # defaults 60 8 3
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from space import SearchSpace
from train import SupernetConfig, SupernetEstimator, TrainConfig, TrainEstimator, load_data


def clock():
    return time.perf_counter(), time.process_time()


def since(t):
    return time.perf_counter() - t[0], time.process_time() - t[1]


def main(steps: int = 60, n_points: int = 8, n_train: int = 3) -> dict:
    torch.set_num_threads(1)
    data_cfg = {"name": "digits", "input_size": 32, "seed": 0, "test_fraction": 0.2, "holdout_fraction": 0.2}
    data = load_data(data_cfg)
    space = SearchSpace.load("v3_small")
    points = [space.reference, *(space.sample(s) for s in range(n_points - 1))]
    with tempfile.TemporaryDirectory() as root:
        est = SupernetEstimator(data, SupernetConfig(run_name="bench", steps=steps, checkpoint_every=steps),
                                space=space, results_dir=root, data_cfg=data_cfg, progress=False, log=lambda s: None)
        t = clock()
        est.prepare()
        train_wall, train_cpu = since(t)
        scored = []
        for a in points:
            t = clock()
            acc = est(a)
            scored.append((acc.top1, *since(t)))
    per = TrainEstimator(data, TrainConfig(epochs=2, batch_size=64, lr=0.1, seed=0))
    trained = []
    for a in points[:n_train]:
        t = clock()
        acc = per(a)
        trained.append((acc.top1, *since(t)))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    out = {"data": "digits 32 px", "space": "v3_small", "supernet_steps": steps, "batch_size": 64,
           "supernet_train_wall_s": round(train_wall, 1), "supernet_train_cpu_s": round(train_cpu, 1),
           "supernet_trial_wall_s": round(mean([s[1] for s in scored]), 2),
           "supernet_trial_cpu_s": round(mean([s[2] for s in scored]), 2),
           "supernet_top1": [round(s[0], 3) for s in scored],
           "train_trial_wall_s": round(mean([s[1] for s in trained]), 2),
           "train_trial_cpu_s": round(mean([s[2] for s in trained]), 2),
           "train_top1": [round(s[0], 3) for s in trained]}
    out["trials_per_cpu_hour_supernet"] = round(3600 / out["supernet_trial_cpu_s"])
    out["trials_per_cpu_hour_train"] = round(3600 / out["train_trial_cpu_s"])
    return out


if __name__ == "__main__":
    result = main(*map(int, sys.argv[1:]))
    print(json.dumps(result, indent=1))
    Path(__file__).with_name("supernet_timing.json").write_text(json.dumps(result, indent=1) + "\n")
