"""`load_data(cfg)`: one entry point for the four datasets the accuracy proxy trains on."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.settings import plain

from .cluttered import load_cluttered
from .errors import DataError
from .split import DataSplit, check_fraction, three_way
from .tensors import ImageTensors


def load_data(cfg: Any) -> DataSplit:
    c = plain(cfg)
    c.pop("defaults", None)  # a conf/data YAML read as it is names its schema there
    name = c.get("name")
    if name not in LOADERS:
        raise DataError(f"data.name={name!r} is unknown: pass data.name=one of {', '.join(LOADERS)}")
    size = c.get("input_size", 32)
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise DataError(f"data.input_size={size!r} is not an integer >= 8: pass e.g. data.input_size=32")
    if "val_fraction" in c:
        raise DataError("data.val_fraction is gone: selection reads data.holdout_fraction (carved from the "
                        "training data) and reports on the test split; pass data.holdout_fraction=0.2")
    unknown = set(c) - COMMON_KEYS - LOADER_KEYS.get(name, set())
    if unknown:
        raise DataError(f"data.{sorted(unknown)[0]} is not an option of data={name}: its options are "
                        f"{', '.join(sorted(COMMON_KEYS | LOADER_KEYS.get(name, set())))} (see conf/data/{name}.yaml)")
    for key in ("holdout_fraction", "test_fraction"):
        if key in c:
            check_fraction(key, c[key])
    return LOADERS[name](c, size)


def _digits(c: dict, size: int) -> DataSplit:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # N x 1 x 8 x 8 in [0, 1]
    # Resizing once up front: per-item bilinear on 8x8 sources would dominate an epoch.
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, ho, te = three_way(d.target, c, what="digits")
    # Statistics from the training split only, so holdout and test stay unseen.
    mean, std = float(x[tr].mean()), float(x[tr].std())
    make = lambda idx: ImageTensors(x[idx], y[idx], size=size, mean=[mean], std=[std])  # noqa: E731
    return DataSplit(make(tr), make(ho), make(te), 10, size, "digits", tuple(str(i) for i in range(10)))


def _synthetic(c: dict, size: int) -> DataSplit:
    k, n_train, n_holdout, n_test = (c.get("num_classes", 4), c.get("n_train", 128), c.get("n_holdout", 64),
                                     c.get("n_test", 64))
    for key, v, low in (("num_classes", k, 2), ("n_train", n_train, 1), ("n_holdout", n_holdout, 1),
                        ("n_test", n_test, 1)):
        if not isinstance(v, int) or v < low:
            raise DataError(f"data.{key}={v!r} is not an integer >= {low}: pass e.g. data.{key}={max(low, 4)}")
    g = torch.Generator().manual_seed(int(c.get("seed", 0)))
    # One smooth pattern plus one colour per class: learnable both by convolutions and by
    # a pooled head, but the noise keeps it from being solved in a single step.
    blobs = F.interpolate(torch.randn(k, 3, 4, 4, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False)
    templates = blobs / blobs.flatten(1).std(1).view(k, 1, 1, 1) + 0.5 * torch.randn(k, 3, 1, 1, generator=g)

    def draw(n: int) -> ImageTensors:
        y = torch.arange(n) % k  # balanced classes
        y = y[torch.randperm(n, generator=g)]
        x = templates[y] + 1.5 * torch.randn(n, 3, size, size, generator=g)
        return ImageTensors(x, y, size=size, mean=[0.0] * 3, std=[1.0] * 3)

    return DataSplit(draw(n_train), draw(n_holdout), draw(n_test), k, size, "synthetic",
                     tuple(f"class{i}" for i in range(k)))


def _cifar10(c: dict, size: int) -> DataSplit:
    from .cifar10 import load_cifar10
    return load_cifar10(c, size)


def _imagefolder(c: dict, size: int) -> DataSplit:
    from .imagefolder import load_imagefolder
    return load_imagefolder(c, size)


# The keys each dataset reads (conf/data/<name>.yaml); any other key is a typo and is refused.
COMMON_KEYS = {"name", "input_size", "seed", "root", "holdout_fraction", "test_fraction"}
LOADER_KEYS: dict[str, set[str]] = {
    "digits": set(), "cifar10": set(), "imagefolder": {"test_root", "cache_mb"},
    "synthetic": {"num_classes", "n_train", "n_holdout", "n_test"},
    "cluttered": {"n_train", "n_holdout", "n_test", "canvas", "digit_min", "digit_max", "n_clutter", "clutter_frac",
                  "holdout_sources", "test_sources"},
}

LOADERS: dict[str, Callable[[dict, int], DataSplit]] = {
    "digits": _digits, "synthetic": _synthetic, "cifar10": _cifar10, "imagefolder": _imagefolder,
    "cluttered": load_cluttered,
}
