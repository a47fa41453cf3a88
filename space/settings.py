"""The ``space`` group (conf/space/*.yaml) as a structured config: its scalar keys and the shape of
``blocks`` are checked when the config is composed (core/cli.py); each block's choices are checked by
``SearchSpace.from_config``, which also reads spaces from files outside Hydra (``space_file=``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.settings import Settings, integer, number, register, rule, text


@register
@dataclass
class SpaceSettings(Settings):
    PREFIX = "space"
    name: str = text("space")
    reference: str | None = text(None, example="v3_large")
    stem: int = integer(16, ge=1)
    last_conv: int = integer(960, ge=1)
    head: int = integer(1280, ge=1)
    dropout: float = number(0.2, ge=0, lt=1)
    blocks: list[Any] = rule([], "list", example="[{kernel: [3, 5], expand: [16, 32], out: 16}]")
