"""conf/netadapt.yaml as a structured config (see core/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from core.settings import Settings, choice, flag, integer, number, register, text
from measure.settings import LatencySettings
from train.settings import TrainBase

from .names import IMPORTANCE
from .resources import RESOURCES

SELECT = ("ratio", "accuracy")


@register
@dataclass
class NetAdaptConfig(Settings):
    start: str = text("v3_small")
    start_study: str | None = text(None, example="results/search/v3_small/digits-multi")
    start_trial: int | None = integer(None, ge=0, example=3)
    weights: str | None = text(None, example="weights.pt")
    pretrain_epochs: float = number(20, ge=0)
    resource: str = choice("latency", RESOURCES)
    budget: float | None = number(0.8, gt=0, lt=1, optional=True)
    budget_ms: float | None = number(None, gt=0, example=1.0)
    step: float = number(0.01, gt=0, lt=1)
    continue_from: str | None = text(None, example="results/netadapt/v3_small-digits-b0p9")
    short_steps: int = integer(40, ge=1)
    select: str = choice("ratio", SELECT)
    importance: str = choice("bn_weight", IMPORTANCE)
    max_iterations: int | None = integer(None, ge=1, example=10)
    long_epochs: float = number(10, ge=0)
    finetune_lr: float | None = number(0.02, gt=0, optional=True)
    baseline: bool = flag(True)
    run_name: str | None = text(None, example="my-run")
    results_dir: str = text("results")
    seed: int = integer(0, ge=0)
    threads: int | None = integer(None, ge=1, example=1)
    progress: bool = flag(True)
    train: TrainBase = field(default_factory=TrainBase)
    latency: LatencySettings = field(default_factory=LatencySettings)
    data: Any = None
    accuracy: Any = None


ConfigStore.instance().store(name="netadapt_schema", node=NetAdaptConfig)
