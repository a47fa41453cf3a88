"""The ``train`` node of conf/search.yaml and conf/netadapt.yaml as a structured config (see core/settings.py).

``TrainConfig`` (train/loop.py) checks itself against the same rules, so a config built in code is held
to what the command line is.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings, check, choice, flag, integer, number, register, text

SCHEDULES = ("cosine", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")
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
    seeds: int = integer(1, ge=1)  # trainings per network (seed, seed+1, ...), scored by their mean
    device: str = text("auto", pattern=DEVICE, hint="auto, cpu, cuda, cuda:<n> or mps")
    num_workers: int = integer(0, ge=0)
    precision: str = choice("fp32", PRECISIONS)
    channels_last: bool = flag(False)
    compile: bool = flag(False)


@register
@dataclass
class TrainSettings(TrainBase):
    """A search's proxy training: ``epochs`` (may be fractional), or ``steps`` when set."""

    epochs: float = number(2, ge=0)
    steps: int | None = integer(None, ge=0, example=100)
    workers_per_gpu: int = integer(1, ge=1)


def check_train(tc) -> None:
    """Check a ``TrainConfig`` (or any object with its fields) against the rules above."""
    check(tc, "train", TrainSettings)


# -- the data and accuracy groups: one schema per option, named first in its YAML's defaults list ----------
@register
@dataclass
class DataBase(Settings):
    PREFIX = "data"
    name: str = text("digits")
    input_size: int = integer(32, ge=8)
    seed: int = integer(0, ge=0)
    root: str | None = text(None, example="/path/to/data")
    holdout_fraction: float = number(0.2, gt=0, lt=1)


@register
@dataclass
class SplitData(DataBase):
    """A dataset without an official test set: test is a seeded split made before holdout."""

    test_fraction: float = number(0.2, gt=0, lt=1)


@register
@dataclass
class ImageFolderData(SplitData):
    test_root: str | None = text(None, example="/path/to/test")
    cache_mb: float = number(1024, ge=0)


@register
@dataclass
class SyntheticData(DataBase):
    num_classes: int = integer(4, ge=2)
    n_train: int = integer(128, ge=1)
    n_holdout: int = integer(64, ge=1)
    n_test: int = integer(64, ge=1)


@register
@dataclass
class ClutteredData(DataBase):
    input_size: int = integer(64, ge=8)
    n_train: int = integer(20000, ge=1)
    n_holdout: int = integer(5000, ge=1)
    n_test: int = integer(5000, ge=1)
    canvas: int = integer(64, ge=8)
    digit_min: int = integer(24, ge=4)
    digit_max: int = integer(48, ge=4)
    n_clutter: int = integer(4, ge=0)
    clutter_frac: float = number(0.4, gt=0, le=1)
    holdout_sources: float = number(0.2, gt=0, lt=1)
    test_sources: float = number(0.2, gt=0, lt=1)


@register
@dataclass
class TrainAccuracy(Settings):
    PREFIX = "accuracy"
    name: str = choice("train", ("train",))


@register
@dataclass
class SupernetAccuracy(Settings):
    """``accuracy=supernet``: one weight-sharing supernet trained once (sandwich rule), trials inherit its weights."""

    PREFIX = "accuracy"
    name: str = choice("supernet", ("supernet",))
    run_name: str = text("digits", pattern=r"[A-Za-z0-9][A-Za-z0-9._=+-]*", example="digits",
                         hint="letters, digits and . _ = + - (it names a folder)")
    steps: int = integer(300, ge=1)
    batch_size: int = integer(64, ge=1)
    lr: float = number(0.05, gt=0)
    momentum: float = number(0.9, ge=0, lt=1)
    nesterov: bool = flag(True)
    weight_decay: float = number(4e-5, ge=0)
    label_smoothing: float = number(0.1, ge=0, lt=1)
    schedule: str = choice("cosine", SCHEDULES)
    warmup_steps: int = integer(10, ge=0)
    n_random: int = integer(2, ge=0)
    sort_every: int = integer(100, ge=0)
    kernel_transform: bool = flag(False)
    progressive_shrinking: bool = flag(False)
    checkpoint_every: int = integer(25, ge=1)
    bn_recal_batches: int = integer(20, ge=1)
    finetune_steps: int = integer(0, ge=0)
    finetune_lr: float = number(0.01, gt=0)
    seed: int = integer(0, ge=0)


def _store() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, node in (("digits", SplitData), ("cifar10", DataBase), ("imagefolder", ImageFolderData),
                       ("synthetic", SyntheticData), ("cluttered", ClutteredData)):
        cs.store(group="data", name=f"{name}_schema", node=node)
    cs.store(group="accuracy", name="train_schema", node=TrainAccuracy)
    cs.store(group="accuracy", name="supernet_schema", node=SupernetAccuracy)


_store()
