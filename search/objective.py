"""What one trial does: pick an architecture, cost it, train it briefly, report its objectives.

Every figure a trial produces is stored as a user attribute (``arch``, ``params``, ``macs``,
``latency_ms``, ``top1``, ``test_top1``, ``duration_s``, ``cpu_s``, ``device``, ``failure``), whatever the
objective mode, so results and plots read one place for both the multi-objective and the MnasNet-reward studies.
``top1`` is the holdout accuracy the sampler optimises (with ``train.seeds=k``, the mean of k trainings, each in
``top1_per_seed``); ``test_top1`` is only reported.

``Objective.evaluate`` produces the same figures for a network outside the space (the other
reference network), without an Optuna trial: same costs, same accuracy estimator.
"""
from __future__ import annotations

import time

import optuna

import measure
from space import ArchSpec, SearchSpace, format_arch
from train import AccuracyEstimator, DivergedError

from .results import seed_cell

METRICS = ("top1", "latency_ms", "macs")
DIRECTIONS = {"multi": ["maximize", "minimize", "minimize"], "mnas": ["maximize"]}
METRIC_NAMES = {"multi": list(METRICS), "mnas": ["reward"]}


class TrialFailed(RuntimeError):
    """A trial that ends as FAILED with its reason recorded; the study goes on."""


def mnas_reward(top1: float, latency_ms: float, target_ms: float, w: float) -> float:
    """MnasNet / MobileNetV3 search reward ACC x (LAT / TARGET)^w (w < 0 favours fast networks)."""
    return top1 * (latency_ms / target_ms) ** w


class Objective:
    """``objective(trial)`` for ``study.optimize``.

    MACs and parameters are those of the deployed network the latency is for: ``input_size`` of the
    latency model and 1000 classes, so they compare with published figures; the proxy training
    uses the data's own resolution and classes.
    """

    def __init__(self, space: SearchSpace, estimator: AccuracyEstimator, latency, *,
                 mode: str = "multi", input_size: int = 224, target_ms: float | None = None,
                 w: float = -0.07, max_latency_ms: float | None = None, max_macs: float | None = None,
                 worker: str = "", device: str = ""):
        self.space, self.estimator, self.latency = space, estimator, latency
        self.mode, self.input_size, self.target_ms, self.w = mode, input_size, target_ms, w
        self.max_latency_ms, self.max_macs, self.worker = max_latency_ms, max_macs, worker
        self.device = device  # where this worker trains (train/placement.py): recorded per trial

    def costs(self, arch: ArchSpec) -> measure.Costs:
        return measure.costs(arch, self.latency, input_size=self.input_size)

    def __call__(self, trial: optuna.Trial):
        start, cpu = time.perf_counter(), time.process_time()
        trial.set_user_attr("worker", self.worker)  # first: tells a dead worker's trial apart
        if self.device:
            trial.set_user_attr("device", self.device)
        try:
            arch = self.space.suggest(trial)
            trial.set_user_attr("arch", format_arch(arch))
            c = self.costs(arch)
            c.latency_ms = round(c.latency_ms, 5)  # the value reported is the value stored
            for key, value in (("latency_ms", c.latency_ms), ("macs", c.macs), ("params", c.params)):
                trial.set_user_attr(key, value)
            if c.latency_raw_ms is not None:  # measured: the wall-clock figure before conversion, beside it
                trial.set_user_attr("latency_raw_ms", round(c.latency_raw_ms, 5))
            # Same set of constraints on every trial, set before training: samplers need both.
            if self.max_latency_ms is not None:
                trial.set_constraint("latency_ms", c.latency_ms - self.max_latency_ms)
            if self.max_macs is not None:
                trial.set_constraint("macs", c.macs - self.max_macs)
            acc = self.estimator(arch, f"trial {trial.number}")
            top1 = acc.top1
            trial.set_user_attr("top1", top1)
            trial.set_user_attr("test_top1", acc.test_top1)
            trial.set_user_attr("top1_per_seed", list(acc.per_seed or (top1,)))  # train.seeds: top1 is their mean
        except (DivergedError, TrialFailed) as e:
            trial.set_user_attr("failure", str(e).splitlines()[0] if str(e) else type(e).__name__)
            raise TrialFailed(str(e)) from None
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # redone on the next run, like a dead worker's
            raise
        finally:
            trial.set_user_attr("duration_s", round(time.perf_counter() - start, 2))
            trial.set_user_attr("cpu_s", round(time.process_time() - cpu, 2))  # load-independent, unlike wall s
        if self.mode == "mnas":
            return mnas_reward(top1, c.latency_ms, self.target_ms, self.w)
        return top1, c.latency_ms, float(c.macs)

    def evaluate(self, arch: ArchSpec, label: str) -> dict:
        """What a trial records (arch, costs, top1, duration_s, cpu_s, failure) for any network, with no trial.

        A divergence is a result, as for a trial: ``top1`` None and ``failure`` saying why.
        """
        start, cpu = time.perf_counter(), time.process_time()
        c = self.costs(arch)
        out = {"arch": format_arch(arch), "top1": None, "test_top1": None, "latency_ms": round(c.latency_ms, 5),
               "latency_raw_ms": None if c.latency_raw_ms is None else round(c.latency_raw_ms, 5),
               "macs": c.macs, "params": c.params, "failure": ""}
        try:
            acc = self.estimator(arch, label)
            out["top1"], out["test_top1"] = acc.top1, acc.test_top1
            out["top1_per_seed"] = seed_cell(list(acc.per_seed or (acc.top1,)))
        except (DivergedError, TrialFailed) as e:
            out["failure"] = str(e).splitlines()[0] if str(e) else type(e).__name__
        out["duration_s"] = round(time.perf_counter() - start, 2)
        out["cpu_s"] = round(time.process_time() - cpu, 2)
        return out
