"""``python -m netadapt.run [key=value ...]``: a NetAdapt run, resumed when rerun (conf/netadapt.yaml)."""
from __future__ import annotations

from collections.abc import Sequence

from core.cli import Command, check_group_choices, compose, run
from core.cli import accuracy_text as acc

GROUPS = ("data", "accuracy", "latency")
CLI = Command("python -m netadapt.run", "netadapt", "[key=value ...]",
              "Shrink a trained network under a latency budget (NetAdapt); rerun to resume (conf/netadapt.yaml).",
              groups=GROUPS)


def main(argv: Sequence[str]) -> int:
    from core.settings import plain

    check_group_choices(argv, GROUPS)
    cfg = plain(compose("netadapt", argv))
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
    if s.get("measured"):
        m = s["measured"]
        line = "  ".join(f"{k} {v['measured_ms']:.3f} ms (predicted {v['predicted_ms']:.3f})"
                         for k, v in m.items() if isinstance(v, dict))
        print(f"measured end to end ({m['latency_model']}): {line}")
        if "baseline_over_final" in m:
            print(f"baseline / final measured latency {m['baseline_over_final']:.3f}; top-1 final - baseline "
                  f"{100 * m['top1_final_minus_baseline']:+.1f} points (holdout)")
    if s.get("stopped"):
        print(f"note: {s['stopped']}")
    print(f"results: {out.folder}/ (history.jsonl, final.json/.pt/.onnx, baseline.json, trajectory.png)")
    return 0


if __name__ == "__main__":
    run(main)
