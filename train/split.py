"""`DataSplit` (train / holdout / test) and the seeded stratified splits every loader shares.

Three splits, three roles. ``train`` fits weights. ``holdout`` is carved (seeded, stratified) from the
training data and is the only split selection ever reads: search trials, NetAdapt proposals, the
sampler. ``test`` is the dataset's official test set where it has one, else a seeded split made
before ``holdout``, and is only reported. Loaders import this module; it imports none of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from .errors import DataError


@dataclass(frozen=True)
class DataSplit:
    train: Dataset  # yields (float tensor C x H x W, normalised; int label)
    holdout: Dataset  # selection reads this one only
    test: Dataset  # reported, never selected on
    num_classes: int
    input_size: int
    name: str
    classes: tuple[str, ...] = ()  # class names where the source has them
    test_source: str = "split"  # "official" (the dataset's own test set) or "split" (seeded, from the data)


def check_fraction(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise DataError(f"data.{key}={value!r} is outside (0, 1): pass e.g. data.{key}=0.2")
    return float(value)


def stratified_split(labels: np.ndarray, fraction: float, seed: int, *, what: str, key: str = "holdout_fraction",
                     index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, carved) of a seeded split of ``index`` (default: all) keeping class proportions."""
    fraction = check_fraction(key, fraction)
    idx = np.arange(len(labels)) if index is None else np.asarray(index)
    sub = np.asarray(labels)[idx]
    n, n_classes = len(idx), len(np.unique(sub))
    n_out = math.ceil(fraction * n)
    if n_out < n_classes or n - n_out < n_classes:
        raise DataError(f"{what}: {n} samples of {n_classes} classes leave a class empty in a split with "
                        f"data.{key}={fraction:g}: add samples or change data.{key}")
    # Imported here: sklearn.model_selection pulls in scipy.stats, 1.2 s of every command's start-up (help, bad
    # input, table builds) that only a split needs.
    from sklearn.model_selection import train_test_split

    try:
        kept, carved = train_test_split(idx, test_size=n_out, random_state=seed, stratify=sub, shuffle=True)
    except ValueError as e:  # e.g. a class with a single member
        raise DataError(f"{what}: stratified split failed ({e}): give every class at least 2 samples "
                        f"or change data.{key}") from e
    return np.sort(kept), np.sort(carved)


def three_way(labels: np.ndarray, c: dict, *, what: str, official_test: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Indices (train, holdout, test) of ``labels``; test is None when the dataset has its own.

    The test split is carved first and with its own seed offset, so changing ``holdout_fraction``
    never moves an image into or out of test.
    """
    seed = int(c.get("seed", 0))
    rest, test = (np.arange(len(labels)), None) if official_test else stratified_split(
        labels, c.get("test_fraction", 0.2), seed + 1, what=what, key="test_fraction")
    train, holdout = stratified_split(labels, c.get("holdout_fraction", 0.2), seed, what=what, index=rest)
    return train, holdout, test
