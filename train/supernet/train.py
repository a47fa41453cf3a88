"""Sandwich-rule training of the supernet, checkpointed, bound to its settings, shared by workers, DDP-ready.

Per step (BigNAS / AttentiveNAS's sandwich rule with in-place distillation): the largest point learns
from the labels, the smallest and ``n_random`` random points from the largest's detached soft targets;
their gradients are summed into one optimiser step. Only the ``train`` split is read.

Every random draw of a step is seeded by (seed, step): the batch (a seeded permutation per epoch), the
sampled points, dropout. So the run is a pure function of its settings and the weights and optimiser
state at any step: a checkpoint holds those, and a run killed at any moment (SIGKILL included)
resumes from its last checkpoint to the same weights as an uninterrupted run of the same seed.

The folder ``<results_dir>/supernet/<space>/<run_name>/`` holds ``settings.json`` (what the
checkpoint is bound to: the space, the data and the supernet settings; a rerun with other settings
stops naming the first differing key), ``supernet.pt`` (the checkpoint, written atomically) and
``lock``: one process trains while the others (workers of one study) wait for it, and one that dies
releases the lock, so the next resumes. Under ``torchrun`` each process trains on its share of every
batch with DistributedDataParallel (gloo on CPU, NCCL on GPU); rank 0 writes the checkpoint.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from core.files import save_torch, write_atomic
from core.rerun import differences, flat, shorten
from core.settings import check, plain
from space import SearchSpace

from ..errors import DivergedError
from ..loop import SGDSettings, lr_factor, resolve_device, sgd
from .errors import SupernetError
from .net import Supernet
from .shrinking import STAGES, restrict, stage

CHECKPOINT, SETTINGS, LOCK = "supernet.pt", "settings.json", "lock"
CHECKPOINT_LINE = "supernet checkpoint: step"  # printed after every checkpoint write (tests kill on it)


@dataclass
class SupernetConfig(SGDSettings):
    """``conf/accuracy/supernet.yaml`` (rules: ``train/settings.py``'s ``SupernetAccuracy``)."""

    run_name: str = "digits"
    steps: int = 300
    batch_size: int = 64
    lr: float = 0.05
    warmup_steps: int = 10
    n_random: int = 2
    sort_every: int = 100
    kernel_transform: bool = False  # Once-for-All's learned kernel transform (net.py)
    progressive_shrinking: bool = False  # Once-for-All's stages: largest alone, then kernel, width, all (shrinking.py)
    checkpoint_every: int = 25
    bn_recal_batches: int = 20
    finetune_steps: int = 0  # SGD steps on train batches of a trial's inherited weights before scoring
    finetune_lr: float = 0.01
    seed: int = 0
    device: str = "auto"  # from train.device: where it runs, not what it computes
    num_workers: int = 0
    schedule: str = "cosine"
    precision: str = "fp32"  # from train.precision (bound only when not fp32: it changes what is computed)
    channels_last: bool = False  # from train.channels_last

    def __post_init__(self):
        from ..settings import SupernetAccuracy

        check(self, "accuracy", SupernetAccuracy)

    @classmethod
    def from_cfg(cls, cfg: Any, **extra) -> SupernetConfig:
        c = {**plain(cfg), **extra}
        return cls(**{f.name: c[f.name] for f in dataclasses.fields(cls) if f.name in c})

    def bound(self) -> dict:
        """The settings the weights depend on (not where they run, nor how often they are saved)."""
        d = dataclasses.asdict(self)
        for k in ("run_name", "device", "num_workers", "checkpoint_every", "channels_last", *SCORING):
            d.pop(k)
        if d["precision"] == "fp32":  # bound only when used: supernets trained before it existed still load
            d.pop("precision")
        for k in ("kernel_transform", "progressive_shrinking"):
            if not d[k]:  # bound only when used: supernets trained before it existed still load
                d.pop(k)
        return d


# How a trial is scored from the trained weights: not part of what the checkpoint depends on.
SCORING = ("bn_recal_batches", "finetune_steps", "finetune_lr")


def space_config(space: SearchSpace) -> dict:
    """``space`` as the mapping ``SearchSpace.from_config`` reads (its reference left out)."""
    from space.searchspace import FIELDS

    return {"name": space.name, "stem": space.stem, "last_conv": space.last_conv, "head": space.head,
            "dropout": space.dropout,
            "blocks": [{f: list(getattr(bc, f)) for f in FIELDS} for bc in space.blocks]}


def _short(v) -> str:
    return shorten(json.dumps(v) if not isinstance(v, str) else v, 60)


def check_binding(folder: Path, binding: dict) -> None:
    """Raise SupernetError naming the first key where ``folder``'s supernet was made with other settings."""
    path = folder / SETTINGS
    if not path.is_file():
        return
    theirs = json.loads(path.read_text())["binding"]
    diff = differences(theirs, binding)
    if diff:
        key, a, b = diff[0], flat(theirs), flat(binding)
        was = f"with {key}={_short(a[key])}" if key in a else f"without {key}"
        now = f"{key}={_short(b[key])}" if key in b else "without it"
        raise SupernetError(f"supernet {folder} was trained {was}, not {now}: use the same settings or pass "
                            f"accuracy.run_name=<another name>")


# -- distributed --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


DIST_TIMEOUT_S = int(os.environ.get("BNECK_DIST_TIMEOUT_S", "1800"))  # a rank that hangs fails, not the run forever


def init_distributed(device_name: str) -> tuple[Dist, torch.device, bool]:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU.
    Returns (ranks, device, whether this call made the group: the one that made it destroys it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return Dist(), device, False
    import datetime

    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    made = not dist.is_initialized()
    if made:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=DIST_TIMEOUT_S))
    return Dist(dist.get_rank(), dist.get_world_size()), device, made


def average_gradients(net: nn.Module, d: Dist) -> None:
    """One all-reduce per step of every gradient the sandwich produced, averaged over the ranks.

    Not DistributedDataParallel: its reducer expects one fixed set of parameters per backward, and each
    sub-network of a sandwich uses another subset (SE, expansion convs, kernel transforms), so DDP would
    need ``find_unused_parameters=True`` (a graph traversal per backward) and ``no_sync`` around all but the
    last backward. Summing the sandwich's gradients locally and reducing them once is what that would do,
    without the traversal. Every rank draws the same sub-networks (seeded by step), so the parameters with
    a gradient are the same on every rank; one without keeps none, as in a single process."""
    if d.world <= 1:
        return
    import torch.distributed as dist

    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= d.world
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def average_bn_statistics(net: nn.Module, d: Dist) -> None:
    """BN running statistics averaged over the ranks (before a checkpoint). During a step each rank normalises
    with its own shard's batch statistics (timm's default without --sync-bn): the supernet's BN layers slice
    their channels per sub-network, which SyncBatchNorm cannot, and every scored point re-estimates its
    statistics on training batches anyway (``bn_recal_batches``)."""
    if d.world <= 1:
        return
    import torch.distributed as dist

    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf /= d.world


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def folder_lock(folder: Path, log, d: Dist):
    """Hold ``folder/lock`` (rank 0 only under torchrun); say so while waiting for another process."""
    if not d.main:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process training the supernet in {folder}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- checkpoints --------------------------------------------------------------------------------------
def read_checkpoint(folder: Path) -> dict | None:
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- written atomically, so only a foreign file gets here
        raise SupernetError(f"cannot read supernet checkpoint {path} ({type(e).__name__}): delete it to "
                            f"train again") from None


def write_checkpoint(folder: Path, state: dict) -> None:
    save_torch(folder / CHECKPOINT, state)


# -- training -----------------------------------------------------------------------------------------
def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """The training examples of ``step``: a seeded permutation per epoch, cut into batches (the ragged
    tail dropped, unless it is the only batch)."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[pos * batch_size:(pos + 1) * batch_size]


def step_archs(net: Supernet, step: int, cfg: SupernetConfig) -> list:
    """Largest, smallest, then ``n_random`` uniformly random points: the sandwich of ``step``. Under progressive
    shrinking, the choices its stage has not opened are the largest's (stage 0: the largest alone)."""
    rng = random.Random(cfg.seed * 1_000_003 + step)
    largest = net.largest()
    archs = [largest, net.smallest(), *(net.space.sample(rng) for _ in range(cfg.n_random))]
    if not cfg.progressive_shrinking:
        return archs
    fields = STAGES[stage(step, cfg.steps)]
    if not fields:
        return [largest]
    return [restrict(a, largest, fields, net.space) for a in archs]


def sandwich_step(model: nn.Module, net: Supernet, x, y, archs, opt, cfg: SupernetConfig, *,
                  d: Dist = Dist(), scaler=None) -> torch.Tensor:
    """One optimiser step: the first of ``archs`` on the labels, the others distilled from it. Returns the
    losses, on the device and unread (the caller reads them once per log interval: no host sync here)."""
    from ..loop import autocast

    opt.zero_grad(set_to_none=True)
    scale = scaler.scale if scaler is not None else (lambda t: t)
    amp = autocast(x.device, cfg.precision)
    with amp:
        logits = model(x, archs[0]).float()
    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    scale(loss).backward()
    soft = F.softmax(logits.detach(), dim=1)
    losses = [loss.detach()]
    for arch in archs[1:]:
        with amp:
            student = F.log_softmax(model(x, arch).float(), dim=1)
        kd = -(soft * student).sum(1).mean()
        scale(kd).backward()
        losses.append(kd.detach())
    average_gradients(net, d)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return torch.stack(losses)


def read_losses(pending: list[torch.Tensor], first_step: int) -> list[list[float]]:
    """The losses of the steps since the last read (one host sync); a non-finite one stops the run, naming its step."""
    if not pending:
        return []
    values = torch.stack(pending).tolist()
    pending.clear()
    for i, v in enumerate(values):
        if not all(math.isfinite(x) for x in v):
            raise DivergedError(f"supernet loss became {v} at step {first_step + i}: lower accuracy.lr")
    return values


def train_supernet(space: SearchSpace, data, cfg: SupernetConfig, folder: Path, binding: dict, *,
                   progress: bool = True, log=print) -> Supernet:
    """The trained supernet of ``folder``: loaded when done, else trained (or resumed) here, or waited for."""
    d, device, made = init_distributed(cfg.device)
    try:
        return _train_or_load(space, data, cfg, folder, binding, d, device, progress=progress, log=log)
    finally:
        if made:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train_or_load(space: SearchSpace, data, cfg: SupernetConfig, folder: Path, binding: dict, d: Dist, device, *,
                   progress: bool, log) -> Supernet:
    say = log if d.main else (lambda *a, **k: None)
    if d.main:
        folder.mkdir(parents=True, exist_ok=True)
        check_binding(folder, binding)
    torch.manual_seed(cfg.seed)  # the initial weights
    net = Supernet(space, data.num_classes, cfg.kernel_transform)
    with folder_lock(folder, say, d):
        if d.main and not (folder / SETTINGS).is_file():
            write_atomic(folder / SETTINGS, json.dumps({"binding": binding}, indent=1, sort_keys=True) + "\n")
        _barrier(d)
        state = read_checkpoint(folder)
        if state is not None and state["done"]:
            net.load_state_dict(state["model"])
            return net.to(device).eval()  # it stays where it runs: scoring extracts points there
        _fit(net, data, cfg, folder, state, d, device, progress=progress and d.main, say=say)
    return net.eval()


def _fit(net: Supernet, data, cfg: SupernetConfig, folder: Path, state: dict | None, d: Dist, device,
         *, progress: bool, say) -> None:
    net.to(device).train()
    opt = sgd(net, cfg, cfg.lr)
    start, seconds, cpu_seconds = 0, 0.0, 0.0
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, seconds = int(state["step"]), float(state["seconds"])
        cpu_seconds = state.get("cpu_seconds")  # None: a checkpoint from before CPU seconds were kept
        say(f"supernet: resuming {folder} at step {start}/{cfg.steps}")
    n = len(data.train)
    if n == 0:
        raise SupernetError(f"the training set of {data.name!r} is empty: the supernet needs training data")
    if min(n, cfg.batch_size) < d.world:  # a rank with an empty shard would stall the others
        raise SupernetError(f"accuracy.batch_size={cfg.batch_size} ({min(n, cfg.batch_size)} images a step) is "
                            f"smaller than the {d.world} torchrun processes: pass accuracy.batch_size>={d.world} "
                            f"or start fewer processes")
    from ..batches import gather, source
    from ..loop import LOG_EVERY

    src = source(data.train, device, cfg.num_workers)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    pending: list[torch.Tensor] = []
    began, cpu_began = time.perf_counter(), time.process_time()
    bar = tqdm(total=cfg.steps, initial=start, desc=f"supernet {net.space.name}", disable=not progress,
               dynamic_ncols=True, unit="step")
    try:
        for step in range(start, cfg.steps):
            x, y = gather(src, batch_indices(step, n, cfg.batch_size, cfg.seed)[d.rank::d.world])
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(step, cfg.steps, cfg)
            pending.append(sandwich_step(net, net, x, y, step_archs(net, step, cfg), opt, cfg, d=d, scaler=scaler))
            done = step + 1
            if cfg.sort_every and done % cfg.sort_every == 0 and done < cfg.steps:
                net.sort_channels(opt)
            bar.update(1)
            checkpoint = done % cfg.checkpoint_every == 0 or done == cfg.steps
            if checkpoint or done % LOG_EVERY == 0:  # losses read here only; never a NaN checkpoint
                losses = read_losses(pending, done - len(pending) + 1)[-1]
                bar.set_postfix(loss=f"{losses[0]:.3f}", kd=f"{sum(losses[1:]) / max(1, len(losses) - 1):.3f}")
            if checkpoint:
                average_bn_statistics(net, d)
                if d.main:
                    spent = seconds + time.perf_counter() - began
                    # CPU seconds of this process (all its threads): unlike wall seconds, not inflated by other load
                    cpu = None if cpu_seconds is None else round(cpu_seconds + time.process_time() - cpu_began, 2)
                    write_checkpoint(folder, {"step": done, "done": done == cfg.steps, "seconds": spent,
                                              "cpu_seconds": cpu,
                                              "model": {k: v.cpu() for k, v in net.state_dict().items()},
                                              "opt": opt.state_dict()})
                    (bar.write if progress else say)(f"{CHECKPOINT_LINE} {done}/{cfg.steps} written to "
                                                     f"{folder / CHECKPOINT}")
                _barrier(d)
    finally:
        bar.close()
