"""``python -m search.fidelity +space=<name> [key=value ...]``: how well the search's proxy budget ranks the best
networks of a space (conf/fidelity.yaml); start it several times on one folder to share the trainings."""
from __future__ import annotations

from collections.abc import Sequence

from core.cli import Command, check_group_choices, compose, require_group, run
from space import available_spaces

COMMAND = "python -m search.fidelity"
GROUPS = ("space", "data", "accuracy")
CLI = Command(COMMAND, "fidelity", "+space=<name> [key=value ...]",
              "Train networks of a space (or a study's best trials) with several seeds at each budget and report "
              "how well one training ranks all of them, the best half and the best quarter; rerun to resume.",
              groups=GROUPS, plus=("space",))


def main(argv: Sequence[str]) -> int:
    check_group_choices(argv, GROUPS, plus=("space",))
    cfg = compose("fidelity", argv)
    require_group(cfg, "space", available_spaces(), COMMAND)
    from .fidelity_run import run_fidelity

    out = run_fidelity(cfg)
    print(f"{out.trained} trainings run now, {out.total - out.left} of {out.total} done, "
          f"{out.networks} networks, in {out.seconds / 60:.1f} min")
    if out.left:
        print(f"{out.left} trainings are still running in other workers: the last to finish writes the full report")
    for v in out.verdicts:
        print(v.replace("**", ""))
    print(f"results: {out.folder}/ (fidelity.jsonl, fidelity.md, fidelity.png)")
    return 0


if __name__ == "__main__":
    run(main)
