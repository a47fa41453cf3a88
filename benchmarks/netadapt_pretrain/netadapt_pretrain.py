"""How long NetAdapt's start must be trained: a short finetune of the *unchanged* start should gain < 0.2 points.

    python -m benchmarks.netadapt_pretrain.netadapt_pretrain [--epochs 5 10 20 40] [--seeds 0 1]

If a short finetune of the start network alone raises its accuracy, NetAdapt's ratio rule (accuracy
change per latency cut) ranks continued training plus noise, not the proposals. Per pretraining length
and seed: MobileNetV3-Small trained on digits at 32 px with the default ``conf/netadapt.yaml`` training
(train.seed = seed), then finetuned exactly as a proposal is in iteration 1 (``short_steps`` 40 steps at
``finetune_lr``, train seed + 1), holdout top-1 and loss before and after. Holdout only. Each result is a
line of ``benchmarks/netadapt_pretrain/netadapt_pretrain.jsonl`` (rerun to resume; trained starts are shared with
``netadapt_importance.py`` under ``results/benchmarks/netadapt_importance/``); the table is printed and
written to ``benchmarks/netadapt_pretrain/netadapt_pretrain.md`` above its ``## Reading`` section.
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import append_jsonl, bracket, read_jsonl, write_report
from core import compose, plain, quiet_warnings
from search import stats as st
from train import TrainConfig, evaluate, load_data, make_estimator

HERE = Path(__file__).resolve().parent
JSONL, MD = HERE / "netadapt_pretrain.jsonl", HERE / "netadapt_pretrain.md"


def main() -> None:

    from benchmarks.netadapt_importance.netadapt_importance import start_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    quiet_warnings()
    torch.set_num_threads(1)
    done = {(r["epochs"], r["seed"]) for r in read_jsonl(JSONL)}
    for epochs in [] if args.report_only else args.epochs:
        for seed in args.seeds:
            if (epochs, seed) in done:
                continue
            cfg = plain(compose("netadapt", [f"seed={seed}", "threads=1"]))
            data = load_data(cfg["data"])
            est = make_estimator(cfg["accuracy"], data, TrainConfig.from_cfg(cfg["train"]))
            t0 = time.perf_counter()
            model = start_model(est, seed, epochs)
            seconds = time.perf_counter() - t0
            before, loss0 = evaluate(model, data.holdout, device=torch.device("cpu"))
            tuned = copy.deepcopy(model)
            res = est.train(tuned, "short finetune", report=False, steps=int(cfg["short_steps"]),
                            lr=float(cfg["finetune_lr"]), seed=est.cfg.seed + 1)
            rec = {"epochs": epochs, "seed": seed, "steps": math.ceil(epochs * (len(data.train) // 64)),
                   "top1": round(before, 6), "loss": round(loss0, 6), "finetuned_top1": res.top1,
                   "finetuned_loss": round(res.loss, 6), "gain_points": round(100 * (res.top1 - before), 3),
                   "pretrain_seconds": round(seconds, 1)}
            append_jsonl(JSONL, rec)
            print(rec, flush=True)
    rows = list({(r["epochs"], r["seed"]): r for r in read_jsonl(JSONL)}.values())
    lines = ["# How long to pretrain NetAdapt's start (digits, MobileNetV3-Small)", "",
             "`python -m benchmarks.netadapt_pretrain.netadapt_pretrain` (results: `netadapt_pretrain.jsonl`). Start trained "
             "`pretrain_epochs` on digits at 32 px (batch 64, lr 0.1, cosine), then finetuned as a proposal is "
             "(40 steps, lr 0.02); holdout top-1 (288 images: 1 image = 0.35 points) and loss before and after. "
             "Gain = after - before, mean over seeds with a 95% t-interval.", "",
             "| pretrain_epochs | steps | seeds | start top-1 | after finetune | gain (points) | loss before, after |",
             "|---|---|---|---|---|---|---|"]
    for e in sorted({r["epochs"] for r in rows}):
        rs = [r for r in rows if r["epochs"] == e]
        gains = [r["gain_points"] for r in rs]
        m, h = st.mean_interval(gains)
        n = len(gains)
        mean = lambda key, rs=rs: statistics.fmean(r[key] for r in rs)  # noqa: E731
        lines.append(f"| {e:g} | {rs[0]['steps']} | {n} | {100 * mean('top1'):.1f}% | "
                     f"{100 * mean('finetuned_top1'):.1f}% | {bracket(m, h, '+.2f')} | "
                     f"{mean('loss'):.3f}, {mean('finetuned_loss'):.3f} |")
    print(write_report(MD, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
