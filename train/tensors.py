"""In-memory image datasets and the seeded stratified split every loader shares."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from .errors import DataError


class ImageTensors(Dataset):
    """Images held as one N x C x H x W tensor; normalised (and resized) per item on access.

    Keeping the raw tensor (uint8 for CIFAR, 1-channel float for digits) and doing the cheap
    per-item work lazily keeps memory a few times below a fully expanded float copy.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, size: int,
                 mean: Sequence[float], std: Sequence[float], scale: float = 1.0):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match")
        self.images = images
        self.labels = labels.long()
        self.size = size
        self.scale = scale
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i].float() * self.scale
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear",
                              align_corners=False)[0]
        x = (x - self.mean) / self.std
        if x.shape[0] == 1:  # grayscale sources feed 3-channel networks
            x = x.expand(3, -1, -1)
        return x, int(self.labels[i])


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int, *, what: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of a seeded split that keeps class proportions in both halves."""
    check_val_fraction(val_fraction)
    n, n_classes = len(labels), len(np.unique(labels))
    n_val = math.ceil(val_fraction * n)
    if n_val < n_classes or n - n_val < n_classes:
        raise DataError(
            f"{what}: {n} samples of {n_classes} classes cannot be split stratified with "
            f"val_fraction={val_fraction}: add samples or change data.val_fraction")
    idx = np.arange(n)
    try:
        train_idx, val_idx = train_test_split(idx, test_size=n_val, random_state=seed,
                                              stratify=labels, shuffle=True)
    except ValueError as e:  # e.g. a class with a single member
        raise DataError(f"{what}: stratified split failed ({e}): give every class at least 2 samples") from e
    return np.sort(train_idx), np.sort(val_idx)


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < float(val_fraction) < 1.0:
        raise DataError(f"data.val_fraction={val_fraction} is outside (0, 1): pass e.g. data.val_fraction=0.2")
