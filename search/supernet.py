"""``python -m search.supernet +space=<name> [key=value ...]``: train (or resume) the supernet of
``accuracy=supernet`` before a search, on one machine or under ``torchrun`` (DistributedDataParallel);
``python -m search.supernet export study=<study folder> trial=<n> [out=<file.pt>]``: write a trial's
inherited weights as a state dict loadable by ``space.build_model`` (NetAdapt's start=<study>:<trial>
loads it). Keys are those of ``conf/search.yaml`` (data, accuracy.*, train.device, results_dir).
"""
from __future__ import annotations

from collections.abc import Sequence

from core.cli import Command, UsageError, check_group_choices, compose, require_group, run
from space import available_spaces

COMMAND = "python -m search.supernet"
GROUPS = ("space", "data", "accuracy")
CLI = Command(COMMAND, "search", "+space=<name> [key=value ...] | export study=<folder> trial=<n> [out=<file>]",
              "Train (or resume) the weight-sharing supernet of accuracy=supernet, or export a trial's inherited "
              "weights; torchrun --nproc_per_node N -m search.supernet ... trains on N processes.",
              groups=GROUPS, plus=("space",), positionals=("export",))


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["export"]:
        return export(argv[1:])
    check_group_choices(argv, GROUPS, plus=("space",))
    chosen = [a.split("=", 1)[1] for a in argv if a.startswith("accuracy=")]
    if chosen and chosen[-1] != "supernet":
        raise UsageError(f"{COMMAND} trains the supernet of accuracy=supernet, not accuracy={chosen[-1]}: "
                         f"drop accuracy={chosen[-1]}")
    cfg = compose("search", [*argv, *([] if chosen else ["accuracy=supernet"])])
    require_group(cfg, "space", available_spaces(), COMMAND)
    from core.settings import plain
    from space import SearchSpace
    from train import TrainConfig, load_data, make_estimator, resolve_device

    space = SearchSpace.from_config(plain(cfg.space))
    train_cfg = TrainConfig.from_cfg(plain(cfg.train))
    resolve_device(train_cfg.device)  # cuda on a host without it: refused before the data loads
    data = load_data(cfg.data)
    est = make_estimator(plain(cfg.accuracy), data, train_cfg, space=space, results_dir=cfg.results_dir,
                         data_cfg=plain(cfg.data), progress=bool(cfg.get("progress", True)))
    est.prepare()
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        probe = est(est.net.largest(), "largest")
        print(f"supernet {est.folder} trained ({est.cfg.steps} steps); largest point: holdout top1 "
              f"{probe.top1:.1%}, scored in {probe.seconds:.1f} s")
    return 0


def export(argv: Sequence[str]) -> int:
    args = {}
    for a in argv:
        key, eq, value = a.partition("=")
        if not eq or key not in ("study", "trial", "out"):
            raise UsageError(f"export takes study=<study folder> trial=<number> [out=<file.pt>], not {a!r}")
        args[key] = value
    if "study" not in args or "trial" not in args:
        raise UsageError(f"give both: {COMMAND} export study=results/search/<space>/<study> trial=<number>")
    if not args["trial"].isdigit():
        raise UsageError(f"trial={args['trial']} is not a trial number: pass e.g. trial=3")
    from train.supernet.estimator import export_trial

    out, arch = export_trial(args["study"], int(args["trial"]), args.get("out"))
    from space import format_arch

    print(f"trial {args['trial']} ({format_arch(arch)}): inherited weights written to {out} "
          f"(load with space.build_model(parse_arch(arch), num_classes).load_state_dict)")
    return 0


def with_supernet(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``accuracy=supernet`` when it names no estimator (so --help and --cfg job show its keys)."""
    argv = list(argv)
    if argv[:1] == ["export"] or any(a.startswith("accuracy=") for a in argv):
        return argv
    return [*argv, "accuracy=supernet"]


if __name__ == "__main__":
    import sys

    run(main, with_supernet(sys.argv[1:]))
