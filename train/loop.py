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
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from core.settings import plain

from .batches import ordered, shuffled, source
from .errors import DeviceError, DivergedError
from .settings import check_train
from .split import DataSplit


@dataclass
class SGDSettings:
    """The optimizer and loss settings every training here shares (per-trial training, the supernet)."""

    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1


def sgd(model: nn.Module, cfg: SGDSettings, lr: float) -> torch.optim.SGD:
    """SGD on ``model`` with ``cfg``'s momentum and weight decay (none on norms and biases: ``param_groups``)."""
    return torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


@dataclass
class TrainConfig(SGDSettings):
    epochs: float = 3  # may be fractional
    steps: int | None = None  # if set, overrides epochs (NetAdapt finetunes for a fixed T steps)
    batch_size: int = 64
    lr: float = 0.1
    schedule: str = "cosine"  # cosine | constant
    warmup_steps: int = 0
    seed: int = 0
    device: str = "auto"  # auto -> cuda if available else cpu
    num_workers: int = 0  # DataLoader workers for datasets decoded on access (in-memory ones live on the device)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    channels_last: bool = False
    compile: bool = False  # torch.compile the training forward
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
    """``train.device`` as a torch device; ``cuda`` on a host without CUDA is a usage error (exit 2)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"train.device={name} but this host has no CUDA device torch can use: pass "
                          f"train.device=cpu (or auto), or run on a host with a GPU and a CUDA build of torch")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"train.device={name} but this host has {torch.cuda.device_count()} GPU(s): pass "
                          f"train.device=cuda (a GPU per worker) or cuda:<n> with n below that")
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


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LOG_EVERY = 50  # steps between reads of the losses from the device (the only host sync of the step loop)


def autocast(device: torch.device, precision: str):
    """The autocast context of ``train.precision`` (fp32: none)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def prepare(model: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """``model`` on ``device`` in ``cfg``'s memory format; cudnn may pick its fastest kernels (sizes are fixed)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _layout(x: torch.Tensor, cfg) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if getattr(cfg, "channels_last", False) else x


def fit(model: nn.Module, data: DataSplit, cfg: TrainConfig, *, progress: bool = False,
        desc: str = "train") -> FitResult:
    """Train ``model`` in place and score it on holdout; it stays on the training device, in eval mode (a caller
    that needs it elsewhere moves it). Same seed -> same weights on the CPU."""
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    if len(data.train) == 0:
        raise ValueError(f"{desc}: the training set of {data.name!r} is empty")
    total, train_loss = train_steps(model, data.train, cfg, device, progress=progress, desc=desc)
    if cfg.bn_recal_batches:
        recalibrate_bn(model, data.train, cfg, device)
    # Holdout only: `fit` is what selection calls, and selection never reads the test split.
    acc, val_loss = evaluate(model, data.holdout, device=device, batch_size=256, num_workers=cfg.num_workers,
                             precision=cfg.precision, channels_last=cfg.channels_last)
    return FitResult(acc, val_loss, total, time.perf_counter() - start, train_loss)


def train_steps(model: nn.Module, dataset: Dataset, cfg: TrainConfig, device: torch.device, *,
                progress: bool = False, desc: str = "train") -> tuple[int, float]:
    """Seeded SGD on `dataset` for `cfg`'s steps (or epochs), in place on `device`; leaves the model in
    train mode. Returns (steps taken, mean training loss over the last up to 50 steps).

    Losses stay on the device and are read every ``LOG_EVERY`` steps (and at the end): a divergence is
    still reported with the exact step it happened at, without a host sync per step."""
    torch.manual_seed(cfg.seed)  # dropout and anything else drawing from the global generator
    batches = shuffled(source(dataset, device, cfg.num_workers), cfg.batch_size, cfg.seed)
    total = total_steps(len(dataset), cfg)
    opt = sgd(model, cfg, cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cfg))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")  # bf16 needs no loss scaling
    prepare(model, cfg, device).train()
    forward = torch.compile(model) if cfg.compile else model  # shares the weights: `model` trains in place
    recent: list[float] = []
    pending: list[torch.Tensor] = []

    def read(step: int) -> None:  # step: the number of steps taken so far
        nonlocal recent
        values = torch.stack(pending).tolist()
        pending.clear()
        first = step - len(values) + 1
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise DivergedError(f"{desc}: loss became {v} at step {first + i}/{total} "
                                    f"(lr={cfg.lr * lr_factor(first + i - 1, total, cfg):.3g}): lower train.lr "
                                    f"or check the model")
        recent = (recent + values)[-50:]
        if progress:
            bar.set_postfix(loss=f"{values[-1]:.3f}", lr=f"{sched.get_last_lr()[0]:.3g}")

    with tqdm(total=total, desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for step in range(1, total + 1):
            x, y = next(batches)
            with autocast(device, cfg.precision):
                loss = criterion(forward(_layout(x, cfg)), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            pending.append(loss.detach().float())
            bar.update(1)
            if step % LOG_EVERY == 0 or step == total:
                read(step)
    return total, sum(recent) / len(recent) if recent else math.nan


@torch.no_grad()
def recalibrate_bn(model: nn.Module, dataset: Dataset, cfg: TrainConfig, device: torch.device) -> None:
    """Replace BN running statistics by plain averages over `cfg.bn_recal_batches` seeded training batches."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    prepare(model, cfg, device).eval()  # dropout and the like stay off; only BN layers see the batches in train mode
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts equally
        m.train()
    batches = shuffled(source(dataset, device, cfg.num_workers), cfg.batch_size, cfg.seed + 1)
    try:
        with autocast(device, cfg.precision):
            for _ in range(cfg.bn_recal_batches):
                model(_layout(next(batches)[0], cfg))
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.eval()


@torch.inference_mode()
def evaluate(model: nn.Module, dataset: Dataset, *, device: torch.device, batch_size: int = 256,
             num_workers: int = 0, precision: str = "fp32", channels_last: bool = False) -> tuple[float, float]:
    """(top-1, mean cross-entropy) of `model` on `dataset`; leaves the model in eval mode on `device`.
    The sums stay on the device and are read once."""
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    model.to(device).eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # summed as Python floats were: exact
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for x, y in ordered(source(dataset, device, num_workers), batch_size):
        with autocast(device, precision):
            logits = model(x.contiguous(memory_format=layout))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    n = len(dataset)
    return int(correct) / n, float(loss_sum) / n


def top1(model: nn.Module, dataset: Dataset, *, batch_size: int = 256, device: str = "auto") -> float:
    """Top-1 accuracy in [0, 1]; the model goes back to its device and train/eval mode afterwards."""
    was_training = model.training
    home = next(model.parameters(), torch.empty(0)).device
    try:
        acc, _ = evaluate(model, dataset, device=resolve_device(device), batch_size=batch_size)
    finally:
        model.to(home).train(was_training)
    return acc
