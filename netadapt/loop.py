"""The NetAdapt loop: pretrain, shrink proposal by proposal down to the budget, long finetune,
and the width-multiplier baseline trained with the same number of steps.

Iteration 0 is the (pre)trained start network. Every later iteration makes the proposals of the
current network, gives each the current weights (``shrink``), finetunes it ``short_steps`` steps and
keeps the best. Each finished iteration is durable (``store``), so rerunning resumes after it.
This module sets a run up and drives it; ``iterate`` holds the iterations, ``finish`` the end of the run.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.cli import UsageError
from space import ArchSpec, format_arch

from . import NetAdaptError
from .finish import Finish
from .iterate import Iterations
from .report import write_report
from .resources import memo, prepared, resource_fn
from .start import exported_weights, load_weights, resolve_start
from .store import SETTINGS, RunFolder, differing

# What a setting was before run.json recorded it: runs from before `importance` existed used the weight
# norm, and runs from before `continue_from` started afresh.
LEGACY = {"importance": "weight", "continued_from": None}


@dataclass
class Outcome:
    folder: Path
    history: list[dict]
    summary: dict
    baseline: dict | None


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")


class NetAdapt(Iterations, Finish):
    """One run of the composed ``conf/netadapt.yaml`` (a plain dict here).

    ``from_config`` resolves the start network, loads the data, opens and prepares the latency model
    and builds the estimator, and passes them in; the constructor reads no file (the run folder is
    checked by ``run``).
    """

    @classmethod
    def from_config(cls, cfg: dict, *, progress: bool = True, log: Callable[[str], Any] = print) -> NetAdapt:
        from measure import latency_model
        from train import TrainConfig, load_data, make_estimator

        if cfg.get("threads"):
            torch.set_num_threads(int(cfg["threads"]))
        try:
            train_cfg = TrainConfig.from_cfg(cfg.get("train") or {})
        except (TypeError, ValueError) as e:
            raise UsageError(str(e)) from None
        from train.placement import worker_device

        # Refused before anything loads on a host without it; cuda: LOCAL_RANK's GPU, else the first.
        train_cfg = dataclasses.replace(train_cfg, device=worker_device(train_cfg.device, None)[0])
        start = resolve_start(cfg.get("start"), cfg.get("start_study"), cfg.get("start_trial"))
        if not cfg.get("weights") and (w := exported_weights(cfg.get("start"), cfg.get("start_study"),
                                                             cfg.get("start_trial"))):
            cfg = {**cfg, "weights": str(w)}  # a supernet trial's exported weights (search.supernet export)
        data = load_data(cfg.get("data") or {})
        latency = prepared(latency_model(cfg.get("latency") or {}, Path(str(cfg.get("results_dir", "results")))), log)
        estimator = make_estimator(cfg.get("accuracy"), data, train_cfg,
                                   seeds=int((cfg.get("train") or {}).get("seeds", 1)))
        start_model, note = None, ""
        if cfg.get("weights"):  # read now: a bad file must fail before the run folder exists
            start_model = estimator.fresh(start[0])
            note = load_weights(start_model, cfg["weights"])
        return cls(cfg, start=start, estimator=estimator, latency=latency, start_model=start_model,
                   weights_note=note, progress=progress, log=log)

    def __init__(self, cfg: dict, *, start: tuple[ArchSpec, str], estimator, latency, start_model=None,
                 weights_note: str = "", progress: bool = True, log: Callable[[str], Any] = print,
                 measured=None):
        self.cfg, self.progress, self.log = cfg, progress, log
        self.estimator, self.data, self.train_cfg = estimator, estimator.data, estimator.cfg
        self.select, self.resource_name = cfg.get("select", "ratio"), cfg.get("resource", "latency")
        self.importance = cfg.get("importance", "bn_weight")
        self._inputs: torch.Tensor | None = None
        # Every value was checked against netadapt/settings.py when the config was composed.
        self.step, self.short_steps = float(cfg.get("step", 0.01)), int(cfg.get("short_steps", 40))
        self.pretrain_epochs = float(cfg.get("pretrain_epochs", 20))
        self.long_epochs = float(cfg.get("long_epochs", 10))
        self.max_iterations = cfg.get("max_iterations")
        self.seed = int(cfg.get("seed", 0))
        self.finetune_lr = float(cfg.get("finetune_lr") or self.train_cfg.lr)

        self.start, start_name = start
        results_dir = Path(str(cfg.get("results_dir", "results")))
        self.raw_latency, self.latency = latency, memo(latency)
        self.latency_record = latency.describe()  # table, content hash, calibration, unit (measure.model)
        self.accept_changed = bool((cfg.get("latency") or {}).get("accept_changed", False))
        self.input_size = int((cfg.get("latency") or {}).get("input_size", 224))
        self.cost = resource_fn(self.resource_name, self.latency, self.input_size)
        self.cost0 = self.cost(self.start)
        self.target, budget_tag = self._budget(cfg)
        self.delta = self.step * self.cost0

        self.weights, self.start_model, self.weights_note = cfg.get("weights"), start_model, weights_note
        self.measured = measured  # the end-to-end model timing start, final and baseline (None: built at the end)
        run_name = cfg.get("run_name") or "-".join(
            [start_name, self.data.name, budget_tag] + (["macs"] if self.resource_name == "macs" else []))
        self.folder = RunFolder(results_dir / "netadapt" / str(run_name))
        self.settings = {
            "start": format_arch(self.start), "weights": str(self.weights) if self.weights else None,
            "data": dict(cfg.get("data") or {}), "latency": self.latency_record, "resource": self.resource_name,
            "budget": cfg.get("budget"), "budget_ms": cfg.get("budget_ms"), "step": self.step,
            "short_steps": self.short_steps, "pretrain_epochs": self.pretrain_epochs,
            "long_epochs": self.long_epochs, "select": self.select, "importance": self.importance, "seed": self.seed,
            "finetune_lr": self.finetune_lr, "train": self._train_settings(cfg),
            "baseline": bool(cfg.get("baseline", True)), "protocol": self._protocol(),
            "continued_from": str(cfg["continue_from"]) if cfg.get("continue_from") else None,
        }
        self.start_name = start_name

    def _train_settings(self, cfg: dict) -> dict:
        """The train settings a rerun must repeat: the device as configured (not the GPU a process got), the
        speed switches left out, precision only when not fp32 (so runs made before they existed resume)."""
        tc = dataclasses.asdict(self.train_cfg)
        tc["device"] = (cfg.get("train") or {}).get("device", tc["device"])
        for k in ("channels_last", "compile"):
            tc.pop(k)
        if tc["precision"] == "fp32":
            tc.pop("precision")
        return tc

    @property
    def title(self) -> str:
        return (f"NetAdapt {self.start_name} on {self.data.name}\nbudget {self.target:.4g} "
                f"{'ms' if self.resource_name == 'latency' else 'MACs'} ({self.latency.name})")

    # -- set-up helpers ------------------------------------------------------------------------------
    def _protocol(self) -> dict:
        """How this run's top-1 figures are measured: the trajectory's are after short finetunes of a
        network pretrained ``pretrain_epochs``, so they compare only with runs of the same protocol."""
        c = self.train_cfg
        return {**self.estimator.protocol(), "estimator": "netadapt",
                "budget": {"pretrain_epochs": self.pretrain_epochs, "short_steps": self.short_steps,
                           "batch_size": c.batch_size, "finetune_lr": self.finetune_lr}}

    def _budget(self, cfg: dict) -> tuple[float, str]:
        unit = "ms" if self.resource_name == "latency" else "MACs"
        budget_ms = cfg.get("budget_ms")
        if budget_ms is not None:
            if self.resource_name != "latency":
                raise UsageError("budget_ms needs resource=latency: with resource=macs give budget=<fraction>")
            target = float(budget_ms)
            if not 0 < target < self.cost0:
                raise UsageError(f"budget_ms={budget_ms} must be > 0 and below the start latency "
                                 f"{self.cost0:.4g} ms ({self.latency.name})")
            return target, f"{_fmt(target)}ms"
        budget = cfg.get("budget")
        if budget is None or isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < 1:
            raise UsageError(f"budget={budget!r} must be a fraction of the start {unit} in (0, 1) "
                             f"(e.g. budget=0.8), or give budget_ms")
        return float(budget) * self.cost0, f"b{_fmt(float(budget))}"

    def _fresh(self, arch: ArchSpec) -> torch.nn.Module:
        return self.estimator.fresh(arch)  # same initialisation for the same arch and seed

    def _train(self, model, desc: str, *, report: bool = True, **changes):
        """Train ``model`` in place and score it: holdout top-1 (selection) and, if ``report``, test top-1."""
        from train import DivergedError

        try:
            return self.estimator.train(model, desc, report=report, **changes)
        except DivergedError as e:
            raise NetAdaptError(str(e)) from None
        finally:
            model.cpu()  # trained where train.device says; shrunk, saved and exported here on the CPU

    def _test_top1(self, model) -> float:
        try:
            return self.estimator.test_top1(model)
        finally:
            model.cpu()

    def _train_seeds(self, make, desc: str, **changes):
        """(first model, Accuracy): ``make(seed)`` finetuned once per seed of train.seeds, scored by the mean."""
        from train import DivergedError

        if not hasattr(self.estimator, "train_seeds"):  # an estimator without seeds: one finetune
            model = make(changes.get("seed"))
            return model, self._train(model, desc, **changes)
        try:
            model, acc = self.estimator.train_seeds(make, desc, **changes)
        except DivergedError as e:
            raise NetAdaptError(str(e)) from None
        return model.cpu(), acc  # as _train: shrunk, saved and exported here on the CPU

    def _point(self, arch: ArchSpec) -> dict:
        from measure import costs

        c = costs(arch, self.latency, input_size=self.input_size)
        raw = {} if c.latency_raw_ms is None else {"latency_raw_ms": round(c.latency_raw_ms, 5)}
        return {"arch": format_arch(arch), "latency_ms": round(c.latency_ms, 5), **raw, "macs": c.macs}

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> Outcome:
        # A new run, else the same run resumed.
        resumed = self.folder.check_settings(self.settings, legacy=LEGACY, accept_changed_latency=self.accept_changed,
                                             log=self.log)
        if not resumed and self.settings["continued_from"]:
            self._continue(RunFolder(Path(self.settings["continued_from"])))
        elif not resumed:
            self.folder.create(self.settings)
        history = self.folder.history()
        if history:
            # The start's cost, the target and delta are the first run's: a measured latency (or a
            # table refitted since) would move them, and the history would no longer be one run.
            self.cost0 = float(history[0]["cost"])
            self.target, _ = self._budget(self.cfg)
            self.delta = self.step * self.cost0
            self.log(f"resuming {self.folder.folder} after iteration {history[-1]['iteration']}")
        else:
            history.append(self._iteration_zero())
        history, stopped = self._shrink_loop(history)
        summary = self._final(history, stopped)
        baseline = self._baseline(history, summary) if self.settings["baseline"] else None
        summary = self._measured(summary, baseline)
        write_report(self.folder.folder, history, summary, baseline, self.title)
        return Outcome(self.folder.folder, history, summary, baseline)

    def _continue(self, source: RunFolder) -> None:
        """Start this run with the iterations of ``source``, a run that differs only in its budget and has
        not gone past this one's: the iterations do not depend on the budget (proposals, the finetune
        seed of iteration k, the choice), so they are this run's first ones and need not be redone."""
        from measure.model import changed

        what = f"continue_from={source.folder}"
        old = source.read_json(SETTINGS)
        if old is None:
            raise NetAdaptError(f"{what} holds no NetAdapt run (no readable run.json): give the folder of a run "
                                "with the same settings and a higher budget")
        diff = differing({**LEGACY, **old}, self.settings, ignore=("budget", "budget_ms", "continued_from"))
        if diff:
            raise NetAdaptError(f"{what} was run with other settings ({', '.join(diff)}): only budget and "
                                "budget_ms may differ")
        if latency := changed(old.get("latency"), self.settings["latency"]):
            raise NetAdaptError(f"{what} used another latency table ({latency}): continue with its table")
        history = source.history()
        if not history:
            raise NetAdaptError(f"{what} has no finished iteration: run it first")
        self.cost0 = float(history[0]["cost"])
        self.target, _ = self._budget(self.cfg)
        past = [r["iteration"] for r in history[:-1] if r["cost"] <= self.target]
        if past:
            raise NetAdaptError(f"{what} went past this run's budget {self.target:.4g} at iteration {past[0]}: "
                                "continue from a run with a higher budget, or start afresh")
        self.folder.create_from(source, self.settings)
        self.log(f"{self.folder.folder}: iterations 0-{history[-1]['iteration']} taken from {source.folder}")

    def _iteration_zero(self) -> dict:
        t0 = time.perf_counter()
        model = self.start_model if self.start_model is not None else self._fresh(self.start)
        if self.weights:
            self.log(self.weights_note)
        res = self._train(model, "pretrain", epochs=self.pretrain_epochs, steps=None)
        record = {"iteration": 0, **self._point(self.start), "cost": self.cost0, "top1": res.top1,
                  "test_top1": res.test_top1,
                  "resource": self.resource_name, "chosen": "start", "proposals": [], "skipped": [],
                  "train_steps": res.steps, "seconds": round(time.perf_counter() - t0, 2)}
        self.folder.commit(record, model.state_dict())
        self.log(f"iteration 0: {record['latency_ms']:.4g} ms, {record['macs'] / 1e6:.1f}M MACs, "
                 f"top1 {record['top1']:.1%} (test {record['test_top1']:.1%}) after {res.steps} pretraining steps")
        return record


def run_netadapt(cfg: dict, *, progress: bool = True, log: Callable[[str], Any] = print) -> Outcome:
    return NetAdapt.from_config(cfg, progress=progress, log=log).run()
