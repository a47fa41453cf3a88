"""``python -m search.run +space=<name> [key=value ...]``: run or resume a study (conf/search.yaml)."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

from core.cli import accuracy_text as acc
from core.cli import check_group_choices, compose, require_group, run
from space import available_spaces

COMMAND = "python -m search.run"
GROUPS = ("space", "data", "accuracy", "sampler", "latency")


def main(argv: Sequence[str]) -> int:
    check_group_choices(argv, GROUPS, plus=("space",))
    cfg = compose("search", argv)
    require_group(cfg, "space", available_spaces(), COMMAND)
    warnings.filterwarnings("ignore", message=".*ExperimentalWarning.*")
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    from search.study import Search

    out = Search.from_config(cfg).run(progress=bool(cfg.get("progress", True)))
    print(f"{out.finished} finished trials ({out.ran} run now) in {out.seconds / 60:.1f} min; "
          f"study {out.study_name} in {out.storage}")
    ref = out.reference
    if ref and ref.get("top1") is not None:
        print(f"reference {ref['reference']}: {acc(ref)}, {ref['latency_ms']:.2f} ms, "
              f"{ref['macs'] / 1e6:.0f}M MACs")
    for c in out.companions:
        got = (c["failure"] if c["top1"] is None
               else f"{acc(c)}, {c['latency_ms']:.2f} ms, {c['macs'] / 1e6:.0f}M MACs")
        print(f"reference {c['name']} (outside the space, not a trial): {got}")
    print(f"Pareto front: {len(out.front)} trials, hypervolume {out.hypervolume:.4f}")
    for r in out.front[:12]:
        print(f"  #{r['number']:<4} {acc(r)}  {r['latency_ms']:7.2f} ms  {r['macs'] / 1e6:6.0f}M MACs  "
              f"{r['params'] / 1e6:5.2f}M params{'  (reference)' if r['reference'] else ''}")
    print(f"results: {out.folder}/ (trials.csv, pareto.csv, pareto.png, hypervolume.csv, references.csv)")
    return 0


if __name__ == "__main__":
    run(main)
