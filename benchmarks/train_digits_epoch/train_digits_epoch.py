"""Wall time of one epoch of digits with MobileNetV3-Small on this machine (training + val eval).

    python -m benchmarks.train_digits_epoch.train_digits_epoch [--input-size 32] [--batch-size 64] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import torch

from train import TrainConfig, fit, load_data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from space import V3_SMALL, build_model

    t = time.perf_counter()
    data = load_data({"name": "digits", "input_size": args.input_size})
    load_s = time.perf_counter() - t
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device="cpu")
    # A 2-step warm-up fit so first-call allocator/oneDNN setup is not billed to the epoch.
    torch.manual_seed(0)
    fit(build_model(V3_SMALL, num_classes=10), data, TrainConfig(steps=2, batch_size=args.batch_size, device="cpu"))
    torch.manual_seed(0)
    model = build_model(V3_SMALL, num_classes=10)
    res = fit(model, data, cfg)
    print(f"threads={torch.get_num_threads()} input={args.input_size} batch={args.batch_size} "
          f"train={len(data.train)} holdout={len(data.holdout)} test={len(data.test)} load={load_s:.2f}s "
          f"fit({res.steps} steps + eval)={res.seconds:.2f}s  {res.seconds / max(1, res.steps) * 1000:.0f} ms/step "
          f"top1={res.top1:.3f} val_loss={res.loss:.3f}")


if __name__ == "__main__":
    main()
