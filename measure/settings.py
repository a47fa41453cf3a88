"""The ``latency`` group (conf/latency/*.yaml) and conf/lut.yaml as structured configs (see core/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from core.settings import Settings, choice, flag, integer, number, register, text

from .names import BACKENDS, STATISTICS


@register
@dataclass
class LatencySettings(Settings):
    PREFIX = "latency"
    source: str = choice("lut", ("lut", "measured"))
    backend: str = choice("onnxruntime", BACKENDS)
    threads: int = integer(1, ge=1)
    input_size: int = integer(224, ge=1)
    batch: int = integer(1, ge=1)
    channels_last: bool = flag(False)
    table: str | None = text(None, example="results/lut/<machine>/onnxruntime_t1_224.json")
    measure_missing: bool = flag(True)
    warmup: int = integer(10, ge=0)
    repeats: int = integer(50, ge=3)
    max_rel_spread: float = number(0.05, gt=0)
    max_rounds: int = integer(4, ge=1)
    statistic: str = choice("p10", STATISTICS)
    unit: str = choice("machine", ("machine", "build"))
    passes: int = integer(2, ge=1)
    confirm: float = number(0.03, ge=0)
    max_passes: int = integer(4, ge=1)
    accept_changed: bool = flag(False)
    foreign_ok: bool = flag(False)
    accept_untrusted: bool = flag(False)
    target: str = text("local", example="ssh://pi@raspberrypi.local")  # checked in __post_init__
    target_python: str = text("python3")  # checked in __post_init__

    def __post_init__(self):
        from .address import check_python, parse_target  # one line naming the problem; a password is never echoed

        parse_target(self.target)
        check_python(self.target_python)
        super().__post_init__()


@register
@dataclass
class LutConfig(Settings):
    """conf/lut.yaml: ``python -m measure.lut build|validate|noise``."""

    results_dir: str = text("results")
    space_file: str | None = text(None, example="my_space.yaml")
    n: int = integer(50, ge=1)
    seed: int = integer(0, ge=0)
    set: str = choice("random", ("random", "references", "netadapt", "all"))
    seconds: float = number(60.0, gt=0)
    sweep_blocks: int = integer(48, ge=0)
    latency: LatencySettings = field(default_factory=LatencySettings)
    space: Any = None


ConfigStore.instance().store(name="lut_schema", node=LutConfig)
