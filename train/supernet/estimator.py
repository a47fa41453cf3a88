"""``accuracy=supernet``: a trial's accuracy with the weights it inherits from the trained supernet.

Scoring a point: extract it as a plain ``space.build_model`` network (``Supernet.extract``), optionally
finetune it for a few seeded SGD steps on training batches (``finetune_steps``), re-estimate its BN
statistics on seeded training batches, score it on ``holdout`` (selection) and on ``test``
(report only), as ``accuracy=train`` does after its training. The same point always gets the same
weights, so ``export_trial`` writes exactly the network a trial was scored with.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from torch import nn

from space import ArchSpec, SearchSpace

from ..accuracy import Accuracy
from ..loop import TrainConfig, evaluate, recalibrate_bn, resolve_device, train_steps
from ..split import DataSplit
from .errors import SupernetError
from .train import SCORING, SETTINGS, SupernetConfig, space_config, train_supernet


def supernet_folder(results_dir, space_name: str, run_name: str) -> Path:
    return Path(results_dir) / "supernet" / space_name / run_name


class SupernetEstimator:
    name = "supernet"

    def __init__(self, data: DataSplit, cfg: SupernetConfig, *, space: SearchSpace, results_dir="results",
                 data_cfg: dict | None = None, progress: bool = True, log=None):
        from .train import check_binding

        self.data, self.cfg, self.space = data, cfg, space
        self.folder = supernet_folder(results_dir, space.name, cfg.run_name)
        self.data_cfg = {k: v for k, v in (data_cfg or {}).items() if k != "defaults"}
        self.progress, self.log = progress, log or (lambda s: print(s, flush=True))
        self.net = None
        self.train_seconds = None
        check_binding(self.folder, self.binding())  # a changed rerun stops before anything runs

    def binding(self) -> dict:
        """What the checkpoint depends on: the space, the data (where it lies aside) and the supernet settings."""
        data = {k: v for k, v in self.data_cfg.items() if k != "root"} or {
            "name": self.data.name, "input_size": self.data.input_size, "num_classes": self.data.num_classes,
            "n_train": len(self.data.train)}
        return {"space": space_config(self.space), "data": data, "accuracy": self.cfg.bound()}

    def protocol(self) -> dict:
        return {"dataset": self.data.name, "input_size": self.data.input_size, "selection": "holdout",
                "n_train": len(self.data.train), "n_holdout": len(self.data.holdout), "n_test": len(self.data.test),
                "test": self.data.test_source, "estimator": self.name, "space": self.space.name,
                "run_name": self.cfg.run_name,
                "budget": {**self.cfg.bound(), **self.scoring()}}

    def scoring(self) -> dict:
        """How a trial is scored from the trained weights (recorded in the protocol, not bound to the checkpoint).
        Finetuning is recorded only when used, so studies scored before it existed keep their protocol."""
        used = [k for k in SCORING if not (k.startswith("finetune_") and not self.cfg.finetune_steps)]
        return {k: getattr(self.cfg, k) for k in used}

    def covers(self, arch: ArchSpec) -> bool:
        """Whether ``arch`` is a point of the supernet's space (only those inherit weights)."""
        return self.space.contains(arch)

    # -- the supernet -----------------------------------------------------------------------------------
    def prepare(self) -> str:
        """Train the supernet (or resume it, or wait for the worker training it, or load it): once."""
        if self.net is None:
            start = time.perf_counter()
            self.net = train_supernet(self.space, self.data, self.cfg, self.folder, self.binding(),
                                      progress=self.progress, log=self.log)
            self.train_seconds = time.perf_counter() - start
            if self.data_cfg and not (self.folder / "data.json").is_file():
                from core.files import write_atomic

                # Where the data lies (data.root), for `python -m search.supernet export`.
                write_atomic(self.folder / "data.json", json.dumps(self.data_cfg, indent=1) + "\n")
        return f"supernet {self.folder} ready"

    def _train_cfg(self) -> TrainConfig:
        c = self.cfg
        return TrainConfig(batch_size=c.batch_size, seed=c.seed, bn_recal_batches=c.bn_recal_batches,
                           device=c.device, num_workers=c.num_workers, precision=c.precision,
                           channels_last=c.channels_last)

    def _finetune_cfg(self) -> TrainConfig:
        c = self.cfg
        return TrainConfig(steps=c.finetune_steps, batch_size=c.batch_size, lr=c.finetune_lr, momentum=c.momentum,
                           nesterov=c.nesterov, weight_decay=c.weight_decay, label_smoothing=c.label_smoothing,
                           seed=c.seed, device=c.device, num_workers=c.num_workers, bn_recal_batches=0,
                           precision=c.precision, channels_last=c.channels_last)

    def model(self, arch: ArchSpec) -> nn.Module:
        """``arch`` with its inherited weights (finetuned if ``finetune_steps``) and BN statistics re-estimated
        on training batches, in eval mode on the training device (``export_trial`` moves it to the CPU).
        The same point always gets the same weights on the CPU."""
        self.prepare()
        model = self.net.extract(arch)
        tc = self._train_cfg()
        device = resolve_device(tc.device)
        if self.cfg.finetune_steps:
            # The extracted network owns copies of the weights: the supernet is left as it is.
            train_steps(model, self.data.train, self._finetune_cfg(), device, desc="finetune")
        recalibrate_bn(model, self.data.train, tc, device)
        return model.eval()

    # -- the estimator ----------------------------------------------------------------------------------
    def __call__(self, arch: ArchSpec, label: str = "") -> Accuracy:
        start = time.perf_counter()
        model = self.model(arch)
        c = self.cfg
        run = {"device": resolve_device(c.device), "num_workers": c.num_workers, "precision": c.precision,
               "channels_last": c.channels_last}
        top1, loss = evaluate(model, self.data.holdout, **run)
        test, _ = evaluate(model, self.data.test, **run)  # report only
        return Accuracy(round(float(top1), 6), round(float(test), 6), float(loss), 0, time.perf_counter() - start)

    def fresh(self, arch: ArchSpec) -> nn.Module:
        raise SupernetError("accuracy=supernet scores search trials; NetAdapt trains its networks: pass "
                            "accuracy=train (start=<study folder>:<trial> starts from a trial's exported weights)")


def make_supernet_estimator(accuracy_cfg: dict, data: DataSplit, train_cfg: TrainConfig, *, space=None,
                            results_dir="results", data_cfg=None, progress: bool = True) -> SupernetEstimator:
    if space is None:
        raise SupernetError("accuracy=supernet scores the points of a search space, and NetAdapt has none: pass "
                            "accuracy=train (start=<study folder>:<trial> starts from a trial's exported weights)")
    cfg = SupernetConfig.from_cfg(accuracy_cfg, device=train_cfg.device, num_workers=train_cfg.num_workers,
                                  precision=train_cfg.precision, channels_last=train_cfg.channels_last)
    return SupernetEstimator(data, cfg, space=space, results_dir=results_dir, data_cfg=data_cfg, progress=progress)


# -- export -------------------------------------------------------------------------------------------
EXPORT_DIR = "weights"


def export_path(study: Path, trial: int) -> Path:
    """Where a trial's inherited weights are written (``netadapt`` looks there for start=<study>:<trial>)."""
    return Path(study) / EXPORT_DIR / f"trial-{int(trial)}.pt"


def _trial_arch(study: Path, trial: int) -> ArchSpec:
    from core.trials import trial_arch_text
    from space import parse_arch

    table = study / "trials.csv"
    if not table.is_file():
        raise SupernetError(f"{study} holds no trials.csv: pass study=results/search/<space>/<study>")
    return parse_arch(trial_arch_text(table, trial, SupernetError, unfinished="export a COMPLETE trial",
                                      missing=": pass trial=<a number in it>"))


def export_trial(study, trial: int, out=None, *, progress: bool = False) -> tuple[Path, ArchSpec]:
    """Write trial ``trial`` of ``study`` (a study folder scored with ``accuracy=supernet``) as a state dict
    loadable by ``space.build_model(arch, num_classes)``: its inherited weights, BN statistics as scored."""
    from core.files import save_torch

    from ..data import load_data

    study = Path(str(study))
    proto_path = study / "protocol.json"
    if not proto_path.is_file():
        raise SupernetError(f"{study} holds no protocol.json: pass study=results/search/<space>/<study>")
    proto = json.loads(proto_path.read_text())
    if proto.get("estimator") != "supernet":
        raise SupernetError(f"study {study} was scored with accuracy={proto.get('estimator')}: its trials inherit no "
                            f"weights; export trials of a study run with accuracy=supernet")
    results_dir = study.parent.parent.parent
    folder = supernet_folder(results_dir, proto["space"], proto["run_name"])
    if not (folder / SETTINGS).is_file() or not (folder / "data.json").is_file():
        raise SupernetError(f"supernet {folder} of study {study} is missing: rerun the study's command to train it")
    arch = _trial_arch(study, int(trial))
    binding = json.loads((folder / SETTINGS).read_text())["binding"]
    data_cfg = json.loads((folder / "data.json").read_text())
    space = SearchSpace.from_config(binding["space"])
    scoring = {k: proto["budget"][k] for k in SCORING if k in proto["budget"]}  # older studies: defaults
    cfg = SupernetConfig(run_name=proto["run_name"], **scoring, **binding["accuracy"])
    est = SupernetEstimator(load_data(data_cfg), cfg, space=space, results_dir=results_dir, data_cfg=data_cfg,
                            progress=progress)
    model = est.model(arch)
    out = Path(str(out)) if out else export_path(study, int(trial))
    save_torch(out, {k: v.cpu() for k, v in model.state_dict().items()})
    return out, arch


__all__ = ["SupernetEstimator", "export_path", "export_trial", "make_supernet_estimator"]
