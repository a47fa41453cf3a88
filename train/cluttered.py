"""Cluttered digits: scikit-learn's 8x8 digits placed at random scale and position on a larger
canvas strewn with fragments cut from other digits (the cluttered-MNIST construction of Jaderberg
et al., "Spatial Transformer Networks", 2015). Everything is generated from the digits that ship
with scikit-learn and one seed: no download.

The 1,797 source digits are split (seeded, stratified by class) into three disjoint source pools,
one each for train, holdout and test; every image of a split, its digit and its clutter, is drawn
from that split's pool only, so no source digit seen in training appears in holdout or test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

SPLITS = ("train", "holdout", "test")
NUM_CLASSES = 10

# Generator settings and their defaults (conf/data/cluttered.yaml documents each).
DEFAULTS = {
    "seed": 0, "n_train": 20000, "n_holdout": 5000, "n_test": 5000,
    "canvas": 64, "digit_min": 24, "digit_max": 48, "n_clutter": 4, "clutter_frac": 0.4,
    "holdout_sources": 0.2, "test_sources": 0.2,
}


@dataclass(frozen=True)
class Cluttered:
    """One split: uint8 images N x 1 x canvas x canvas, labels, and the sklearn digit index of
    every source the image was drawn from (column 0 the labelled digit, the rest its clutter)."""
    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray


def settings(c: dict | None = None) -> dict:
    """DEFAULTS overridden by the keys of `c` that name generator settings, checked."""
    s = dict(DEFAULTS)
    s.update({k: v for k, v in (c or {}).items() if k in DEFAULTS and v is not None})
    for k in ("seed", "n_train", "n_holdout", "n_test", "canvas", "digit_min", "digit_max", "n_clutter"):
        if not isinstance(s[k], int) or isinstance(s[k], bool) or s[k] < (0 if k in ("seed", "n_clutter") else 1):
            raise DataError(f"data.{k}={s[k]!r} is not a valid integer: pass e.g. data.{k}={DEFAULTS[k]}")
    for k in ("n_train", "n_holdout", "n_test"):
        if s[k] < NUM_CLASSES:
            raise DataError(f"data.{k}={s[k]} gives some of the {NUM_CLASSES} classes no image: "
                            f"pass data.{k}>={NUM_CLASSES}")
    if not 2 <= s["digit_min"] <= s["digit_max"] <= s["canvas"]:
        raise DataError(f"data.digit_min={s['digit_min']}, digit_max={s['digit_max']}, canvas={s['canvas']} "
                        f"must satisfy 2 <= digit_min <= digit_max <= canvas: pass e.g. digit_min=16 digit_max=40")
    if not 0.0 < float(s["clutter_frac"]) <= 1.0:
        raise DataError(f"data.clutter_frac={s['clutter_frac']} is outside (0, 1]: pass e.g. data.clutter_frac=0.5")
    hf, tf = float(s["holdout_sources"]), float(s["test_sources"])
    if not (0.0 < hf < 1.0 and 0.0 < tf < 1.0 and hf + tf < 0.9):
        raise DataError(f"data.holdout_sources={hf}, test_sources={tf}: each must be in (0, 1) and their sum "
                        f"below 0.9: pass e.g. holdout_sources=0.2 test_sources=0.2")
    return s


def source_pools(labels: np.ndarray, holdout_frac: float, test_frac: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint sorted index arrays into `labels` per split, each class divided in the same proportions."""
    rng = np.random.default_rng([seed, 1])
    pools: dict[str, list[int]] = {k: [] for k in SPLITS}
    for k in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_te, n_ho = round(test_frac * len(idx)), round(holdout_frac * len(idx))
        pools["test"] += idx[:n_te].tolist()
        pools["holdout"] += idx[n_te:n_te + n_ho].tolist()
        pools["train"] += idx[n_te + n_ho:].tolist()
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in pools.items()}


def _scaled(digits: np.ndarray, sizes: range) -> dict[int, np.ndarray]:
    """Every source digit resized (bilinear) to each side length: {side: N x side x side float32 in [0, 1]}."""
    x = torch.from_numpy(digits.astype(np.float32) / 16.0)[:, None]
    return {s: F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)[:, 0].clamp_(0, 1).numpy()
            for s in sizes}


def _draw(n: int, pool: np.ndarray, labels: np.ndarray, scaled: dict[int, np.ndarray],
          s: dict, rng: np.random.Generator) -> Cluttered:
    canvas, n_clutter = s["canvas"], s["n_clutter"]
    by_class = [pool[labels[pool] == k] for k in range(NUM_CLASSES)]
    y = rng.permutation(np.arange(n) % NUM_CLASSES)  # balanced classes
    images = np.zeros((n, 1, canvas, canvas), dtype=np.uint8)
    sources = np.empty((n, 1 + n_clutter), dtype=np.int64)
    page = np.empty((canvas, canvas), dtype=np.float32)
    for i in range(n):
        page.fill(0.0)
        sources[i, 1:] = rng.choice(pool, size=n_clutter)
        for j in range(n_clutter):  # fragments first, the digit on top (pixelwise max)
            side = int(rng.integers(s["digit_min"], s["digit_max"] + 1))
            cut = max(1, round(s["clutter_frac"] * side))
            oy, ox = rng.integers(0, side - cut + 1, size=2)
            frag = scaled[side][sources[i, 1 + j], oy:oy + cut, ox:ox + cut]
            py, px = rng.integers(0, canvas - cut + 1, size=2)
            np.maximum(page[py:py + cut, px:px + cut], frag, out=page[py:py + cut, px:px + cut])
        src = by_class[y[i]][rng.integers(len(by_class[y[i]]))]
        sources[i, 0] = src
        side = int(rng.integers(s["digit_min"], s["digit_max"] + 1))
        py, px = rng.integers(0, canvas - side + 1, size=2)
        np.maximum(page[py:py + side, px:px + side], scaled[side][src], out=page[py:py + side, px:px + side])
        images[i, 0] = np.rint(page * 255.0).astype(np.uint8)
    return Cluttered(images, y.astype(np.int64), sources)


def generate(c: dict | None = None) -> dict[str, Cluttered]:
    """{'train', 'holdout', 'test'}: a pure function of the settings (seed included)."""
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    s = settings(c)
    d = load_digits()
    pools = source_pools(d.target, float(s["holdout_sources"]), float(s["test_sources"]), s["seed"])
    scaled = _scaled(d.images, range(s["digit_min"], s["digit_max"] + 1))
    out = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([s["seed"], 2, k])  # one stream per split: sizes do not shift the others
        out[split] = _draw(s[f"n_{split}"], pools[split], d.target, scaled, s, rng)
    return out


def as_tensors(parts: dict[str, Cluttered], size: int) -> dict:
    """{split: ImageTensors} normalised with the training split's statistics, kept uint8 (scaled per item)."""
    from .tensors import ImageTensors

    tr = parts["train"].images
    mean, std = float(tr.mean() / 255.0), float(tr.std() / 255.0)
    return {k: ImageTensors(torch.from_numpy(p.images), torch.from_numpy(p.labels), size=size,
                            mean=[mean], std=[std], scale=1.0 / 255.0) for k, p in parts.items()}


def load_cluttered(c: dict, size: int):
    """DataSplit(train, holdout, test) of cluttered digits generated at data.canvas px, shown at `size`."""
    from .split import DataSplit

    t = as_tensors(generate(c), size)
    return DataSplit(train=t["train"], holdout=t["holdout"], test=t["test"], num_classes=NUM_CLASSES,
                     input_size=size, name="cluttered", classes=tuple(str(i) for i in range(NUM_CLASSES)))
