"""conf/fidelity.yaml as a structured config (see core/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from core.settings import Settings, flag, integer, register, rule, text
from train.settings import TrainSettings

from .settings import STUDY_NAME

MIN_ARCHS, MIN_SEEDS = 8, 2


@register
@dataclass
class FidelitySettings(Settings):
    PREFIX = "fidelity"
    archs: int = integer(40, ge=MIN_ARCHS, example=40)
    sample_seed: int = integer(0, ge=0)
    seeds: int = integer(2, ge=MIN_SEEDS, example=2)
    steps: list[int] = rule([300, 600, 1200], "list", example="[300,600]")
    study: str | None = text(None, example="results/search/v3_small/digits-multi")
    top: int = integer(20, ge=MIN_ARCHS, example=20)
    run: str = text("digits", example="digits", pattern=STUDY_NAME,
                    hint="letters, digits and . _ = + - (it names a folder)")

    def __post_init__(self):
        super().__post_init__()
        from core.errors import UsageError

        bad = [s for s in self.steps if not isinstance(s, int) or s < 1]
        if bad:
            raise UsageError(f"fidelity.steps={list(self.steps)} must be whole numbers of steps >= 1: "
                             f"pass e.g. fidelity.steps=[300,600]")


@register
@dataclass
class FidelityConfig(Settings):
    seed: int = integer(0, ge=0)
    results_dir: str = text("results")
    progress: bool = flag(True)
    fidelity: FidelitySettings = field(default_factory=FidelitySettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    space: Any = None
    data: Any = None
    accuracy: Any = None


ConfigStore.instance().store(name="fidelity_schema", node=FidelityConfig)
