"""Training throughput of bneck's own training path on one GPU (issue 29): images/s per configuration, trials/hour
per number of workers sharing the GPU.

    python -m benchmarks.gpu.gpu_throughput images --out DIR [--tiny] [--device cuda]
    python -m benchmarks.gpu.gpu_throughput trials --out DIR [--workers 1 4 8] [--tiny] [--device cuda]

``images``: MobileNetV3-Small and -Large at 64 and 224 px, batch 256, fp32 and bf16, with and without
``channels_last``: ``train.loop.train_steps`` on in-memory random images held on the device (the path of the
in-memory datasets), the first steps (cudnn autotuning, allocator warm-up) untimed, the device synchronised
before the clock stops. ``trials``: N worker processes on the one GPU, each scoring architectures sampled from
v3_small with ``TrainEstimator`` as a search trial does (cluttered 64 px, 600 steps of 64, BN recalibration,
holdout and test evaluation); the clock runs from the moment every worker has its data to the last trial's
end; trials/hour = trials done / that time. ``--tiny``: seconds on a CPU (tiny sizes, few steps), to test the
script, not to measure. Rows are appended to ``DIR/gpu_throughput.jsonl``; ``DIR/gpu_throughput.md`` is
rewritten from all rows of that file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import append_jsonl, read_jsonl

ROOT = Path(__file__).resolve().parents[2]

JSONL, MD = "gpu_throughput.jsonl", "gpu_throughput.md"
CONFIGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _host() -> dict:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"gpu": dev, "torch": torch.__version__, "cpus": os.cpu_count()}


def images(args) -> list[dict]:
    from space import V3_LARGE, V3_SMALL, build_model
    from train import ImageTensors, TrainConfig, train_steps

    device = torch.device(args.device)
    sizes, batch, warm, steps = ((16,), 4, 1, 1) if args.tiny else ((64, 224), 256, 5, 20)
    models = (("V3-Small", V3_SMALL),) if args.tiny else (("V3-Small", V3_SMALL), ("V3-Large", V3_LARGE))
    rows = []
    for name, arch in models:
        for size in sizes:
            g = torch.Generator().manual_seed(0)
            n = batch * 4
            data = ImageTensors(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                                torch.randint(0, 1000, (n,), generator=g), size=size, mean=[0.5] * 3, std=[0.25] * 3,
                                scale=1 / 255)
            for precision, channels_last in CONFIGS:
                torch.manual_seed(0)
                model = build_model(arch, num_classes=1000)
                cfg = dict(batch_size=batch, device=args.device, precision=precision, channels_last=channels_last,
                           bn_recal_batches=0)
                train_steps(model, data, TrainConfig(steps=warm, **cfg), device)  # autotuning, allocator
                _sync(device)
                t0 = time.perf_counter()
                train_steps(model, data, TrainConfig(steps=steps, **cfg), device)
                _sync(device)
                s = time.perf_counter() - t0
                row = {"kind": "images", "model": name, "input_size": size, "batch_size": batch,
                       "precision": precision, "channels_last": channels_last, "steps": steps,
                       "seconds": round(s, 4), "images_per_s": round(steps * batch / s, 1), "tiny": args.tiny,
                       "device": args.device, **_host()}
                print(json.dumps(row), flush=True)
                rows.append(row)
                del model
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def _worker(args) -> None:
    """One worker of ``trials``: load the data, say ready, wait for the others, score architectures."""
    from space import SearchSpace
    from train import TrainConfig, TrainEstimator, load_data

    data_cfg = ({"name": "cluttered", "n_train": 400, "n_holdout": 100, "n_test": 100, "input_size": 16,
                 "canvas": 32, "digit_min": 8, "digit_max": 16} if args.tiny else {"name": "cluttered"})
    data = load_data(data_cfg)
    cfg = TrainConfig(steps=20 if args.tiny else 600, batch_size=64, device=args.device, precision=args.precision,
                      channels_last=args.channels_last, seed=0)
    est = TrainEstimator(data, cfg)
    space = SearchSpace.load("v3_small")
    import random

    rng = random.Random(1000 + args.index)
    est(space.sample(rng))  # untimed: cudnn autotuning and the data's first copy to the device
    ready = Path(args.barrier)
    (ready / f"{args.index}.ready").touch()
    while len(list(ready.glob("*.ready"))) < args.n:
        time.sleep(0.05)
    t0 = time.time()
    done = 0
    while done < args.trials:
        est(space.sample(rng))
        done += 1
    print(json.dumps({"index": args.index, "start": t0, "end": time.time(), "trials": done}), flush=True)


def trials(args) -> list[dict]:
    import tempfile

    rows = []
    per_worker = 1 if args.tiny else args.trials
    for n in args.workers:
        with tempfile.TemporaryDirectory() as barrier:
            cmd = [sys.executable, "-m", "benchmarks.gpu.gpu_throughput", "worker", "--device", args.device, "--barrier", barrier, "--n", str(n),
                   "--trials", str(per_worker), "--precision", args.precision,
                   *(["--channels-last"] if args.channels_last else []), *(["--tiny"] if args.tiny else [])]
            # Tiny runs on a busy CPU: one thread each (OpenMP threads spin-waiting on each other cost 5-10x).
            threads = 1 if args.tiny else max(1, (os.cpu_count() or 1) // n)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            procs = [subprocess.Popen([*cmd, "--index", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
                     for i in range(n)]
            outs = [p.communicate()[0] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"error: a trials worker failed (n={n}): see its output above")
        done = [json.loads(o.strip().splitlines()[-1]) for o in outs]
        wall = max(d["end"] for d in done) - min(d["start"] for d in done)
        total = sum(d["trials"] for d in done)
        row = {"kind": "trials", "workers": n, "trials": total, "seconds": round(wall, 2),
               "trials_per_hour": round(total / wall * 3600, 1), "steps": 20 if args.tiny else 600, "batch_size": 64,
               "precision": args.precision, "channels_last": args.channels_last, "tiny": args.tiny,
               "device": args.device, **_host()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def write_md(out: Path) -> None:
    rows = read_jsonl(out / JSONL)
    lines = ["# Training throughput on one GPU (benchmarks/gpu_throughput.py)", ""]
    host = next((r for r in rows), None)
    if host:
        lines += [f"Device: {host['gpu']}, torch {host['torch']}, {host['cpus']} CPU cores"
                  + (" (tiny mode: tests the script, measures nothing)" if any(r["tiny"] for r in rows) else ""), ""]
    im = [r for r in rows if r["kind"] == "images"]
    if im:
        lines += ["Training images/s (train_steps, in-memory data on the device):", "",
                  "| model | px | batch | fp32 | fp32 + channels_last | bf16 | bf16 + channels_last | "
                  "bf16 + channels_last / fp32 |", "|---|---|---|---|---|---|---|---|"]
        for (m, px) in dict.fromkeys((r["model"], r["input_size"]) for r in im):
            cell = {(r["precision"], r["channels_last"]): r["images_per_s"] for r in im
                    if (r["model"], r["input_size"]) == (m, px)}
            bs = next(r["batch_size"] for r in im if (r["model"], r["input_size"]) == (m, px))
            ratio = (f"{cell[('bf16', True)] / cell[('fp32', False)]:.2f}x"
                     if ("bf16", True) in cell and ("fp32", False) in cell else "")
            cells = " | ".join(str(cell.get(c, "")) for c in CONFIGS)
            lines.append(f"| {m} | {px} | {bs} | {cells} | {ratio} |")
        lines.append("")
    tr = [r for r in rows if r["kind"] == "trials"]
    if tr:
        one = next((r["trials_per_hour"] for r in tr if r["workers"] == 1), None)
        lines += ["Proxy trials/hour (TrainEstimator on cluttered 64 px, steps of 64, workers sharing the GPU):", "",
                  "| workers | precision | channels_last | steps | trials | seconds | trials/hour | vs 1 worker |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in tr:
            vs = f"{r['trials_per_hour'] / one:.2f}x" if one else ""
            lines.append(f"| {r['workers']} | {r['precision']} | {r['channels_last']} | {r['steps']} | {r['trials']} | "
                         f"{r['seconds']} | {r['trials_per_hour']} | {vs} |")
        lines.append("")
    (out / MD).write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("images", "trials", "worker"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--trials", type=int, default=2, help="trials per worker")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--barrier")
    args = ap.parse_args(argv)
    if args.what == "worker":
        _worker(args)
        return 0
    if args.out is None:
        print("error: --out DIR is required: pass --out <folder for the jsonl and md>", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device} but torch sees no CUDA device: pass --device cpu (with --tiny)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = images(args) if args.what == "images" else trials(args)
    for r in rows:
        append_jsonl(args.out / JSONL, r)
    write_md(args.out)
    print(f"results: {args.out / JSONL}, {args.out / MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
