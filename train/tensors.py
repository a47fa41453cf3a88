"""In-memory image datasets: one tensor of images, normalised per item on access."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


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
