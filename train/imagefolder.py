"""A folder of class subfolders of images, read with PIL (torchvision is not a dependency)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .errors import DataError
from .split import DataSplit, three_way
from .tensors import ImageTensors

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
# ImageNet statistics: the usual choice for natural photos of unknown origin.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
FIX = "pass data.root=<folder with one subfolder of images per class>"


def decode(path: Path, size: int) -> torch.Tensor:
    """uint8 3 x size x size: shorter side resized to `size`, then centre-cropped."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            im = im.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"image {path} cannot be read ({e}): delete or replace the file") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


class ImageFiles(Dataset):
    """Decodes each image on access: for folders too big to hold in memory."""

    def __init__(self, paths: list[Path], labels: np.ndarray, size: int):
        self.paths, self.labels, self.size = paths, labels, size
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = decode(self.paths[i], self.size).float() / 255
        return (x - self.mean) / self.std, int(self.labels[i])


def scan(root, key: str = "root") -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    if root in (None, ""):
        raise DataError(f"data.{key} is not set: {FIX}")
    base = Path(str(root)).expanduser()
    if not base.is_dir():
        raise DataError(f"data.{key}={base} does not exist: {FIX}")
    classes = tuple(sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise DataError(f"data.{key}={base} has no class subfolders: {FIX}")
    paths, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (base / cls).rglob("*")
                       if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith("."))
        if not files:
            raise DataError(f"class folder {base / cls} holds no images ({', '.join(sorted(EXTENSIONS))}): "
                            f"add images or remove the folder")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), classes


def load_imagefolder(c: dict, size: int) -> DataSplit:
    paths, labels, classes = scan(c.get("root"))
    if len(classes) < 2:
        raise DataError(f"data.root={c.get('root')} has a single class {classes[0]!r}: {FIX} (at least 2)")
    what = f"imagefolder {c.get('root')}"
    official = c.get("test_root") not in (None, "")
    if official:  # a test folder of its own: every image of root is train or holdout
        test_paths, test_labels, test_classes = scan(c["test_root"], key="test_root")
        if test_classes != classes:
            raise DataError(f"data.test_root={c['test_root']} has classes {list(test_classes)} but data.root has "
                            f"{list(classes)}: give both folders the same class subfolders")
    tr, ho, te = three_way(labels, c, what=what, official_test=official)
    if official:
        te = np.arange(len(paths), len(paths) + len(test_paths))
        paths, labels = paths + test_paths, np.concatenate([labels, test_labels])
    # Hold decoded uint8 pixels in memory when they fit in `cache_mb`; decode lazily otherwise.
    cache_mb = float(c.get("cache_mb", 1024))
    if len(paths) * 3 * size * size <= cache_mb * 2**20:
        pixels = torch.stack([decode(p, size) for p in paths])
        t = torch.from_numpy(labels)

        def make(idx):
            return ImageTensors(pixels[idx], t[idx], size=size, mean=MEAN, std=STD, scale=1 / 255)
    else:
        for p in paths:  # fail at load time, not an hour into training, on files PIL cannot identify
            try:
                with Image.open(p) as im:
                    im.verify()
            except Exception as e:
                raise DataError(f"image {p} cannot be read ({e}): delete or replace the file") from e

        def make(idx):
            return ImageFiles([paths[i] for i in idx], labels[idx], size)
    return DataSplit(make(tr), make(ho), make(te), len(classes), size, "imagefolder", classes,
                     test_source="official" if official else "split")
