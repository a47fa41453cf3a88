"""NetAdapt vs the width-multiplier baseline at equal latency, on digits, from MobileNetV3-Small.

    python benchmarks/netadapt_vs_multiplier.py [key=value ...]   # extra conf/netadapt.yaml overrides

Runs ``python -m netadapt.run`` in-process with a budget sized for a shared 2-core CPU (~15 min),
then writes ``benchmarks/netadapt_vs_multiplier.md`` with both networks' accuracy, latency and MACs.
Latency is the onnxruntime lookup table at 224x224, 1 thread (the deployment setting); training uses
digits upsampled to 16x16 (the images are 8x8, so nothing is lost). Rerunning resumes the run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from core.cli import compose, quiet_warnings
from netadapt.loop import run_netadapt

OVERRIDES = [
    "start=v3_small", "data=digits", "data.input_size=16", "latency=lut", "resource=latency",
    "budget=0.8", "step=0.04", "short_steps=10", "pretrain_epochs=6", "long_epochs=4", "select=ratio",
    "threads=1", "run_name=bench-v3_small-digits", "seed=0",
]


def main(extra: list[str]) -> None:
    quiet_warnings()
    t0 = time.perf_counter()
    cfg = OmegaConf.to_container(compose("netadapt", OVERRIDES + extra), resolve=True)
    out = run_netadapt(cfg, progress=True)
    minutes = (time.perf_counter() - t0) / 60
    s, b, h = out.summary, out.baseline, out.history
    start, final = s["start"], s["final"]
    rows = [
        ("MobileNetV3-Small (start, pretrained)", start["top1"], start["latency_ms"], start["macs"],
         start["train_steps"], start["arch"]),
        (f"NetAdapt, {final['iterations']} iterations + long finetune", final["top1"], final["latency_ms"],
         final["macs"], final["train_steps"], final["arch"]),
        (f"width multiplier x{b['multiplier']:.3f}, same steps", b["top1"], b["latency_ms"], b["macs"],
         b["train_steps"], b["arch"]),
    ]
    lines = [
        "# NetAdapt vs width multiplier at equal latency (digits, from MobileNetV3-Small)",
        "",
        f"`python benchmarks/netadapt_vs_multiplier.py` ({minutes:.1f} min on this run, resumed runs count only the "
        "resumed part). Overrides: `" + " ".join(OVERRIDES + extra) + "`.",
        "",
        f"Latency: {s['latency_model']} (lookup table, onnxruntime, 1 thread, 224x224); MACs at 224x224. "
        f"Budget {s['budget']:.3f} ms = {cfg['budget']} x start, step {cfg['step']}. "
        f"Accuracy: top-1 on the digits validation split (360 images), "
        "one seed.",
        "",
        "| network | top-1 | latency (ms) | MACs | training steps |",
        "|---|---|---|---|---|",
    ]
    for name, acc, lat, macs, steps, _ in rows:
        lines.append(f"| {name} | {acc:.1%} | {lat:.3f} | {macs / 1e6:.1f}M | {steps} |")
    lines += ["", "NetAdapt trajectory (kept network per iteration, after its short finetune):", "",
              "| iteration | chosen | latency (ms) | MACs | top-1 | proposals |", "|---|---|---|---|---|---|"]
    for r in h:
        lines.append(f"| {r['iteration']} | {r['chosen']} | {r['latency_ms']:.3f} | {r['macs'] / 1e6:.1f}M | "
                     f"{r['top1']:.1%} | {len(r['proposals'])} |")
    lines += ["", "Architectures:", ""] + [f"- {name}: `{arch}`" for name, *_, arch in rows]
    lines += ["", f"Results folder: `{out.folder}` (history.jsonl, trajectory.png)."]
    if s.get("stopped"):
        lines += ["", f"Note: {s['stopped']}"]
    path = Path(__file__).with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
