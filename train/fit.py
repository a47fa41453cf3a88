"""`fit`: seeded SGD + cosine training of a model on a DataSplit, scored on its holdout split; `top1`."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from core.settings import plain

from .errors import DivergedError
from .settings import check_train
from .split import DataSplit


@dataclass
class TrainConfig:
    epochs: float = 3  # may be fractional
    steps: int | None = None  # if set, overrides epochs (NetAdapt finetunes for a fixed T steps)
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    schedule: str = "cosine"  # cosine | constant
    warmup_steps: int = 0
    seed: int = 0
    device: str = "auto"  # auto -> cuda if available else cpu
    num_workers: int = 0
    # Training batches used to re-estimate BatchNorm running statistics before evaluating (0: off).
    # torchvision's BN momentum of 0.01 needs hundreds of steps to track the weights, so a short
    # proxy run (or a NetAdapt finetune) would otherwise be scored with stale statistics.
    bn_recal_batches: int = 20

    def __post_init__(self):
        check_train(self)  # the rules of the structured config (train/settings.py)

    @classmethod
    def from_cfg(cls, cfg: Any) -> TrainConfig:
        """Build from a dict or OmegaConf config, ignoring keys that are not fields."""
        c = plain(cfg)
        return cls(**{f.name: c[f.name] for f in dataclasses.fields(cls) if f.name in c})


@dataclass
class FitResult:
    top1: float  # holdout top-1 in [0, 1]
    loss: float  # holdout cross-entropy (no label smoothing)
    steps: int  # optimiser steps taken
    seconds: float  # wall time of training and evaluation
    train_loss: float = math.nan  # mean training loss over the last (up to) 50 steps


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available: pass train.device=auto or cpu")
    return dev


def total_steps(n_train: int, cfg: TrainConfig) -> int:
    if cfg.steps is not None:
        return int(cfg.steps)
    return math.ceil(cfg.epochs * batches_per_epoch(n_train, cfg.batch_size))


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    # A trailing partial batch is dropped (see `fit`), unless it is the only batch.
    return max(1, n_train // batch_size)


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr for 0-based `step`: linear warmup, then cosine to zero or constant."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decaying BatchNorm scales and biases only fights the normalisation; decay weights only.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def shuffled_loader(dataset: Dataset, cfg: TrainConfig, device: torch.device, *, seed: int) -> DataLoader:
    # The sampler owns its generator: DataLoader draws worker seeds from `generator`, which would
    # otherwise make the batch order depend on num_workers.
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        # Dropping the ragged last batch keeps BatchNorm away from tiny batches.
        drop_last=len(dataset) > cfg.batch_size, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed), persistent_workers=cfg.num_workers > 0)


def fit(model: nn.Module, data: DataSplit, cfg: TrainConfig, *, progress: bool = False,
        desc: str = "train") -> FitResult:
    """Train `model` in place; it ends on the CPU in eval mode. Same seed -> same weights on CPU."""
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    if len(data.train) == 0:
        raise ValueError(f"{desc}: the training set of {data.name!r} is empty")
    try:
        total, train_loss = train_steps(model, data.train, cfg, device, progress=progress, desc=desc)
        if cfg.bn_recal_batches:
            recalibrate_bn(model, data.train, cfg, device)
        # Holdout only: `fit` is what selection calls, and selection never reads the test split.
        acc, val_loss = evaluate(model, data.holdout, device=device, batch_size=256,
                                 num_workers=cfg.num_workers)
    finally:
        model.cpu()  # callers measure and export on the CPU
    return FitResult(acc, val_loss, total, time.perf_counter() - start, train_loss)


def train_steps(model: nn.Module, dataset: Dataset, cfg: TrainConfig, device: torch.device, *,
                progress: bool = False, desc: str = "train") -> tuple[int, float]:
    """Seeded SGD on `dataset` for `cfg`'s steps (or epochs), in place on `device`; leaves the model in
    train mode. Returns (steps taken, mean training loss over the last up to 50 steps)."""
    torch.manual_seed(cfg.seed)  # dropout and anything else drawing from the global generator
    loader = shuffled_loader(dataset, cfg, device, seed=cfg.seed)
    total = total_steps(len(dataset), cfg)
    opt = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=cfg.nesterov and cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cfg))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    recent: list[float] = []
    model.to(device).train()
    step = 0
    with tqdm(total=total, desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        while step < total:
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = criterion(model(x), y)
                value = loss.item()  # one sync per step buys an exact step number on divergence
                if not math.isfinite(value):
                    raise DivergedError(f"{desc}: loss became {value} at step {step + 1}/{total} "
                                        f"(lr={sched.get_last_lr()[0]:.3g}): lower train.lr or check the model")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                recent = (recent + [value])[-50:]
                bar.update(1)
                if progress and (step % 10 == 0 or step == total):
                    bar.set_postfix(loss=f"{value:.3f}", lr=f"{sched.get_last_lr()[0]:.3g}")
                if step >= total:
                    break
    return total, sum(recent) / len(recent) if recent else math.nan


@torch.no_grad()
def recalibrate_bn(model: nn.Module, dataset: Dataset, cfg: TrainConfig, device: torch.device) -> None:
    """Replace BN running statistics by plain averages over `cfg.bn_recal_batches` seeded training batches."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    model.eval()  # dropout and the like stay off; only BN layers see the batches in train mode
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts equally
        m.train()
    loader = shuffled_loader(dataset, cfg, device, seed=cfg.seed + 1)
    try:
        for i, (x, _) in enumerate(loader):
            if i >= cfg.bn_recal_batches:
                break
            model(x.to(device, non_blocking=True))
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.eval()


@torch.inference_mode()
def evaluate(model: nn.Module, dataset: Dataset, *, device: torch.device, batch_size: int = 256,
             num_workers: int = 0) -> tuple[float, float]:
    """(top-1, mean cross-entropy) of `model` on `dataset`; leaves the model in eval mode on `device`."""
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return correct / n, loss_sum / n


def top1(model: nn.Module, dataset: Dataset, *, batch_size: int = 256, device: str = "auto") -> float:
    """Top-1 accuracy in [0, 1]; the model goes back to its device and train/eval mode afterwards."""
    was_training = model.training
    home = next(model.parameters(), torch.empty(0)).device
    try:
        acc, _ = evaluate(model, dataset, device=resolve_device(device), batch_size=batch_size)
    finally:
        model.to(home).train(was_training)
    return acc
