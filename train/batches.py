"""Where training and evaluation batches come from: one source per dataset and device, kept for the process.

An in-memory dataset (``ImageTensors``: digits, cluttered, cifar10, synthetic, a cached image folder) is
copied to the device once, raw (uint8 stays uint8), and every batch is gathered, scaled, resized and
normalised there: no DataLoader, no per-item Python, one host-to-device copy of indices per epoch. Any
other dataset (an image folder decoded on access) gets one DataLoader for the process, its workers
persistent (``train.num_workers``), fed batch by batch from the same index plans.

The index plans are those torch's ``RandomSampler`` and ``BatchSampler`` give a ``DataLoader`` seeded
as ``fit`` always seeded it, drawn by those very classes, so a seeded training takes the same batches,
in the same order, as before sources existed: on the CPU the same weights, bit for bit.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from .tensors import ImageTensors

Batch = tuple[torch.Tensor, torch.Tensor]


def shuffled_plan(n: int, batch_size: int, seed: int) -> Iterator[list[list[int]]]:
    """Epoch after epoch, the index batches of a seeded shuffle. The ragged last batch is dropped (it keeps
    BatchNorm away from tiny batches), unless it is the only one."""
    sampler = RandomSampler(range(n), generator=torch.Generator().manual_seed(seed))
    batches = BatchSampler(sampler, batch_size, drop_last=n > batch_size)
    while True:
        yield list(batches)


def ordered_plan(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]


class DeviceImages:
    """An ``ImageTensors`` held on ``device``; ``epoch(plan)`` yields its batches, made on the device."""

    def __init__(self, data: ImageTensors, device: torch.device):
        self.device = device
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.mean, self.std = data.mean.to(device), data.std.to(device)
        self.size, self.scale = data.size, data.scale

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: torch.Tensor) -> Batch:
        """What ``ImageTensors[i]`` gives for each ``i`` of ``idx``, stacked: the same values, bit for bit."""
        x = self.images[idx].float() * self.scale
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if x.shape[1] == 1:  # grayscale sources feed 3-channel networks
            x = x.expand(-1, 3, -1, -1)
        return x.contiguous(), self.labels[idx]

    def epoch(self, plan: Sequence[Sequence[int]]) -> Iterator[Batch]:
        # One copy of the epoch's indices to the device; each batch is a slice of it (no host sync).
        flat = torch.tensor([i for b in plan for i in b], dtype=torch.long).to(self.device, non_blocking=True)
        start = 0
        for b in plan:
            yield self.take(flat[start:start + len(b)])
            start += len(b)


class _PlanSampler(Sampler):
    """A batch sampler whose batches are set before each pass (so one DataLoader serves every plan)."""

    def __init__(self):
        self.plan: Sequence[Sequence[int]] = []

    def __iter__(self):
        return iter(self.plan)

    def __len__(self) -> int:
        return len(self.plan)


class LoadedImages:
    """Any other dataset: one DataLoader (persistent workers) for the process, batches moved to ``device``."""

    def __init__(self, data: Dataset, device: torch.device, num_workers: int):
        self.device, self.n = device, len(data)
        self.sampler = _PlanSampler()
        self.loader = DataLoader(data, batch_sampler=self.sampler, num_workers=num_workers,
                                 pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)

    def __len__(self) -> int:
        return self.n

    def epoch(self, plan: Sequence[Sequence[int]]) -> Iterator[Batch]:
        self.sampler.plan = plan
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def source(data: Dataset, device: torch.device, num_workers: int = 0) -> DeviceImages | LoadedImages:
    """The batch source of ``data`` on ``device``, made once per process (search trials reuse it)."""
    key = (str(device), num_workers if not isinstance(data, ImageTensors) else 0)
    per_data = _SOURCES.setdefault(data, {})
    if key not in per_data:
        per_data[key] = (DeviceImages(data, device) if isinstance(data, ImageTensors)
                         else LoadedImages(data, device, num_workers))
    return per_data[key]


def shuffled(src, batch_size: int, seed: int) -> Iterator[Batch]:
    """Training batches of ``src``, epoch after epoch, seeded."""
    for plan in shuffled_plan(len(src), batch_size, seed):
        yield from src.epoch(plan)


def ordered(src, batch_size: int) -> Iterator[Batch]:
    """Every item of ``src`` once, in order (evaluation)."""
    return src.epoch(ordered_plan(len(src), batch_size))


def gather(src, idx: torch.Tensor) -> Batch:
    """The batch of the items ``idx`` (a CPU index tensor) of ``src``, on its device."""
    if isinstance(src, DeviceImages):
        return src.take(idx.to(src.device, non_blocking=True))
    return next(src.epoch([idx.tolist()]))
