"""The ``train`` node of conf/search.yaml and conf/netadapt.yaml as a structured config (see core/settings.py).

``TrainConfig`` (train/fit.py) checks itself against the same rules, so a config built in code is held
to what the command line is.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings, check, choice, flag, integer, number, register, text

SCHEDULES = ("cosine", "constant")
DEVICE = r"auto|cpu|mps|cuda(:[0-9]+)?"


@register
@dataclass
class TrainBase(Settings):
    """What NetAdapt's training shares with a search's proxy training (its steps are set per phase)."""

    PREFIX = "train"
    batch_size: int = integer(64, ge=1)
    lr: float = number(0.1, gt=0)
    momentum: float = number(0.9, ge=0, lt=1)
    nesterov: bool = flag(True)
    weight_decay: float = number(4e-5, ge=0)
    label_smoothing: float = number(0.1, ge=0, lt=1)
    schedule: str = choice("cosine", SCHEDULES)
    warmup_steps: int = integer(0, ge=0)
    bn_recal_batches: int = integer(20, ge=0)
    seed: int = integer(0, ge=0)
    device: str = text("auto", pattern=DEVICE, hint="auto, cpu, cuda, cuda:<n> or mps")


@register
@dataclass
class TrainSettings(TrainBase):
    """A search's proxy training: ``epochs`` (may be fractional), or ``steps`` when set."""

    epochs: float = number(2, ge=0)
    steps: int | None = integer(None, ge=0, example=100)


@dataclass
class _Workers:
    num_workers: int = integer(0, ge=0)


def check_train(tc) -> None:
    """Check a ``TrainConfig`` (or any object with its fields) against the rules above."""
    check(tc, "train", TrainSettings)
    check(tc, "train", _Workers)
