"""conf/search.yaml and the ``sampler`` group as structured configs (see core/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from core.settings import Settings, choice, flag, integer, number, register, text
from measure.settings import LatencySettings
from train.settings import TrainSettings

STUDY_NAME = r"[A-Za-z0-9][A-Za-z0-9._=+-]*"


@register
@dataclass
class SearchConfig(Settings):
    n_trials: int = integer(30, ge=1)
    seed: int = integer(0, ge=0)
    study_name: str = text("${data.name}-${objective}", example="digits-multi", pattern=STUDY_NAME,
                           hint="letters, digits and . _ = + - (it names a folder)")
    storage: str | None = text(None, example="sqlite:///study.db")
    results_dir: str = text("results")
    objective: str = choice("multi", ("multi", "mnas"))
    target_ms: float | None = number(None, gt=0, example=5.0)
    w: float = number(-0.07, le=0)
    max_latency_ms: float | None = number(None, gt=0, example=5.0)
    max_macs: float | None = number(None, gt=0, example=200e6)
    companions: bool = flag(True)
    progress: bool = flag(True)
    train: TrainSettings = field(default_factory=TrainSettings)
    latency: LatencySettings = field(default_factory=LatencySettings)
    space: Any = None
    data: Any = None
    accuracy: Any = None
    sampler: Any = None


# -- the sampler group: one schema per option, named in its YAML's defaults list -----------------------------
@register
@dataclass
class TPESettings(Settings):
    PREFIX = "sampler"
    name: str = choice("tpe", ("tpe",))
    n_startup_trials: int = integer(10, ge=0)
    multivariate: bool = flag(True)
    constant_liar: bool = flag(True)


@register
@dataclass
class NSGA2Settings(Settings):
    PREFIX = "sampler"
    name: str = choice("nsga2", ("nsga2",))
    population_size: int = integer(10, ge=2)
    crossover_prob: float = number(0.9, ge=0, le=1)
    swapping_prob: float = number(0.5, ge=0, le=1)
    mutation_prob: float | None = number(None, ge=0, le=1, example=0.1)


@register
@dataclass
class GPSettings(Settings):
    PREFIX = "sampler"
    name: str = choice("gp", ("gp",))
    n_startup_trials: int = integer(10, ge=0)
    deterministic_objective: bool = flag(False)


@register
@dataclass
class RandomSettings(Settings):
    PREFIX = "sampler"
    name: str = choice("random", ("random",))


cs = ConfigStore.instance()
cs.store(name="search_schema", node=SearchConfig)
for _name, _node in (("tpe", TPESettings), ("nsga2", NSGA2Settings), ("gp", GPSettings), ("random", RandomSettings)):
    cs.store(group="sampler", name=f"{_name}_schema", node=_node)
