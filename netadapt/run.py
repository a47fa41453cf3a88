"""``python -m netadapt.run [key=value ...]``: a NetAdapt run, resumed when rerun (conf/netadapt.yaml)."""
from __future__ import annotations

from collections.abc import Sequence

from core.cli import accuracy_text as acc
from core.cli import check_group_choices, compose, run

GROUPS = ("data", "accuracy", "latency")


def main(argv: Sequence[str]) -> int:
    from omegaconf import OmegaConf

    check_group_choices(argv, GROUPS)
    cfg = OmegaConf.to_container(compose("netadapt", argv), resolve=True)
    from netadapt.loop import run_netadapt

    out = run_netadapt(cfg, progress=bool(cfg.get("progress", True)))
    s, b = out.summary, out.baseline
    start, final = s["start"], s["final"]
    print(f"start  {start['latency_ms']:8.3f} ms {start['macs'] / 1e6:7.1f}M MACs  {acc(start)}")
    print(f"final  {final['latency_ms']:8.3f} ms {final['macs'] / 1e6:7.1f}M MACs  {acc(final)} "
          f"after {final['iterations']} iterations ({final['train_steps']} training steps)")
    if b:
        print(f"x{b['multiplier']:.3f} {b['latency_ms']:8.3f} ms {b['macs'] / 1e6:7.1f}M MACs  {acc(b)} "
              f"(width-multiplier baseline, same steps)")
    if s.get("stopped"):
        print(f"note: {s['stopped']}")
    print(f"results: {out.folder}/ (history.jsonl, final.json/.pt/.onnx, baseline.json, trajectory.png)")
    return 0


if __name__ == "__main__":
    run(main)
