"""Accuracy estimators: an architecture in, its holdout top-1 (selection) and test top-1 (report) out.

Search and NetAdapt receive an estimator and never build or fit networks themselves. An estimator is
chosen by the Hydra group ``conf/accuracy/``; ``train`` (per-trial proxy training) is the first. A new
one is one module here plus one YAML there, registered in ``ESTIMATORS``.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from core.errors import UsageError
from space import ArchSpec, build_model

from .accuracy import Accuracy, AccuracyEstimator
from .errors import DivergedError
from .loop import TrainConfig, evaluate, fit, resolve_device
from .split import DataSplit


class TrainEstimator:
    """``accuracy=train``: each network trained from a seeded initialisation with one budget, then scored.

    NetAdapt uses ``fresh`` and ``train`` to continue training networks it shrank (inherited weights).
    ``seeds`` (``train.seeds``): a network is trained that many times, seeded ``train.seed``, +1, ...
    (initialisation and batch order), and scored by the mean holdout top-1 (``Accuracy.per_seed`` keeps each).
    """

    name = "train"

    def __init__(self, data: DataSplit, cfg: TrainConfig, seeds: int = 1):
        self.data, self.cfg, self.seeds = data, cfg, int(seeds)

    def protocol(self) -> dict:
        c = self.cfg
        budget = {"steps": c.steps} if c.steps is not None else {"epochs": c.epochs}
        return {"dataset": self.data.name, "input_size": self.data.input_size, "selection": "holdout",
                "n_train": len(self.data.train), "n_holdout": len(self.data.holdout), "n_test": len(self.data.test),
                "test": self.data.test_source, "estimator": self.name,
                "budget": {**budget, "batch_size": c.batch_size, "lr": c.lr, "schedule": c.schedule,
                           **({"precision": c.precision} if c.precision != "fp32" else {}),
                           # named only above one, so studies from before train.seeds still bind
                           **({"seeds": self.seeds} if self.seeds > 1 else {})}}

    def fresh(self, arch: ArchSpec, seed: int | None = None) -> nn.Module:
        # One initialisation seed for every network: differences come from the architecture.
        torch.manual_seed(self.cfg.seed if seed is None else seed)
        return build_model(arch, num_classes=self.data.num_classes)

    def __call__(self, arch: ArchSpec, label: str = "") -> Accuracy:
        return self.train_seeds(lambda seed: self.fresh(arch, seed), label or "train")[1]

    def train_seeds(self, make, label: str, *, report: bool = True, **changes) -> tuple[nn.Module, Accuracy]:
        """``make(seed)`` trained and scored once per seed (``changes["seed"]`` or train.seed, then +1, ...):
        the first seed's model, and the mean of the seeds' figures with each top-1 in ``per_seed``."""
        base = int(changes.pop("seed", self.cfg.seed))
        first, runs = None, []
        for i in range(self.seeds):
            model = make(base + i)
            runs.append(self.train(model, label if self.seeds == 1 else f"{label} seed {base + i}",
                                   report=report, seed=base + i, **changes))
            first = model if first is None else first
        if len(runs) == 1:
            return first, runs[0]
        tests = [r.test_top1 for r in runs]
        return first, Accuracy(round(sum(r.top1 for r in runs) / len(runs), 6),
                               None if None in tests else round(sum(tests) / len(tests), 6),
                               sum(r.loss for r in runs) / len(runs), sum(r.steps for r in runs),
                               sum(r.seconds for r in runs), per_seed=tuple(r.top1 for r in runs))

    def train(self, model: nn.Module, label: str, *, report: bool = True, **changes) -> Accuracy:
        """Train ``model`` in place (``changes`` override the budget: steps, epochs, lr, seed) and score it."""
        result = fit(model, self.data, dataclasses.replace(self.cfg, **changes), desc=label)
        if not math.isfinite(result.top1) or not math.isfinite(result.loss):
            raise DivergedError(f"{label}: holdout loss {result.loss} / top-1 {result.top1} is not finite: "
                                f"lower train.lr")
        test = self.test_top1(model) if report else None
        return Accuracy(round(float(result.top1), 6), test, float(result.loss), result.steps, result.seconds)

    def test_top1(self, model: nn.Module) -> float:
        """Report-only accuracy on the test split (the model stays on the training device, in eval mode)."""
        c = self.cfg
        acc, _ = evaluate(model, self.data.test, device=resolve_device(c.device), num_workers=c.num_workers,
                          precision=c.precision, channels_last=c.channels_last)
        return round(float(acc), 6)


def _train(accuracy_cfg: dict, data: DataSplit, train_cfg: TrainConfig, **context) -> TrainEstimator:
    return TrainEstimator(data, train_cfg, seeds=context.get("seeds", 1))


def _supernet(accuracy_cfg: dict, data: DataSplit, train_cfg: TrainConfig, **context) -> AccuracyEstimator:
    from .supernet.estimator import make_supernet_estimator  # torch-heavy, and only when chosen

    return make_supernet_estimator(accuracy_cfg, data, train_cfg, **context)


# name -> factory(accuracy_cfg, data, train_cfg, *, space=None, results_dir=..., data_cfg=None, progress=True,
#                 seeds=1)
ESTIMATORS = {"train": _train, "supernet": _supernet}


def make_estimator(accuracy_cfg: dict | None, data: DataSplit, train_cfg: TrainConfig, **context) -> AccuracyEstimator:
    """The estimator ``accuracy.name`` names (``conf/accuracy/<name>.yaml``). ``context`` is what some need
    besides: ``space`` (the search space), ``results_dir``, ``data_cfg`` (the data config), ``progress``,
    ``seeds`` (train.seeds: trainings per network, accuracy=train)."""
    cfg = dict(accuracy_cfg or {})
    name = cfg.get("name", "train")
    if name not in ESTIMATORS:
        raise UsageError(f"accuracy={name!r} is unknown: pass accuracy=one of {', '.join(ESTIMATORS)}")
    seeds = context.pop("seeds", 1)
    if seeds > 1 and name != "train":
        raise UsageError(f"train.seeds={seeds} applies to accuracy=train (accuracy={name} scores "
                         f"each network once): drop it or use accuracy=train")
    if name == "train":
        context["seeds"] = seeds
    return ESTIMATORS[name](cfg, data, train_cfg, **context)
