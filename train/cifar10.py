"""CIFAR-10 from the official python pickles (`cifar-10-python.tar.gz`, extracted).

A pickle can run any code it names, and ``data.root`` may hold files from anywhere, so the batches are
read by :class:`BatchUnpickler`, which admits only what the format holds: dicts, lists, bytes and str
(builtins the pickle machine makes without naming a class), and numpy arrays through the few functions
numpy pickles them with (protocol 2 as the official files, 4 and 5 as numpy writes them today). A file
that names anything else is refused before any of it runs.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .split import DataSplit, three_way
from .tensors import ImageTensors

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
VAL_FILE = "test_batch"  # the official test set is the validation split
META_FILE = "batches.meta"
# Per-channel statistics of the CIFAR-10 training set (widely published values).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def find_root(root) -> Path:
    if root in (None, ""):
        raise DataError("data.root is not set: pass data.root=<folder holding cifar-10-batches-py>")
    base = Path(str(root)).expanduser()
    if not base.is_dir():
        raise DataError(f"data.root={base} does not exist: pass data.root=<folder holding cifar-10-batches-py>")
    for cand in (base, base / "cifar-10-batches-py"):
        if (cand / META_FILE).exists() or (cand / VAL_FILE).exists():
            return cand
    raise DataError(f"data.root={base} holds no CIFAR-10 batches ({META_FILE}, {VAL_FILE}): "
                    f"extract cifar-10-python.tar.gz there")


# (module, name) of every global a CIFAR-10 batch refers to: an array is rebuilt by numpy's
# _reconstruct (protocols 2-4) or _frombuffer (5) with its dtype; Python 3 writes bytes in protocol 2
# as _codecs.encode. numpy 2 moved numpy.core to numpy._core; files carry either name.
ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                     *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
                     *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core"))})


class UntrustedPickle(Exception):
    """A pickle named a global outside ``ALLOWED``."""


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR-10 batch holds (see ``ALLOWED``)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise UntrustedPickle(f"{module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {path} is missing: extract the complete cifar-10-python.tar.gz "
                        f"into data.root")
    try:
        with path.open("rb") as f:
            d = BatchUnpickler(f, encoding="bytes").load()  # the batches were pickled by Python 2
    except UntrustedPickle as e:
        raise DataError(f"CIFAR-10 file {path} is not a CIFAR-10 batch: it asks to run {e}, which the format "
                        f"never holds (refused, nothing run): replace it with the official "
                        f"cifar-10-python.tar.gz") from None
    except Exception as e:
        raise DataError(f"CIFAR-10 file {path} is not a readable pickle ({e}): re-download it") from e
    if not isinstance(d, dict):
        raise DataError(f"CIFAR-10 file {path} holds a {type(d).__name__}, not a dict: re-download it")
    # Keys are bytes in the official files; accept str so hand-written copies load too.
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or "labels" not in d:
        raise DataError(f"CIFAR-10 file {path} lacks 'data' or 'labels': re-download it")
    x, y = np.asarray(d["data"]), np.asarray(d["labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
        raise DataError(f"CIFAR-10 file {path} has data {x.dtype}{x.shape} and {len(y)} labels, expected "
                        f"uint8 (N, 3072) and N labels: re-download it")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"CIFAR-10 file {path} has labels outside 0..9: re-download it")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar10(c: dict, size: int) -> DataSplit:
    root = find_root(c.get("root"))
    meta = _unpickle(root / META_FILE)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", []))
    if len(names) != 10:
        raise DataError(f"CIFAR-10 file {root / META_FILE} lists {len(names)} label names, expected 10: re-download it")
    parts = [_batch(root / f) for f in TRAIN_FILES]
    xt, yt = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xv, yv = _batch(root / VAL_FILE)

    # uint8 in memory (150 MB for the full set); scaling, resizing and normalising happen per item.
    def make(x, y):
        return ImageTensors(torch.from_numpy(x), torch.from_numpy(y), size=size, mean=MEAN, std=STD,
                            scale=1 / 255)

    # Holdout is carved from the five training batches; the official test_batch is only reported.
    tr, ho, _ = three_way(yt, c, what="cifar10", official_test=True)
    return DataSplit(make(xt[tr], yt[tr]), make(xt[ho], yt[ho]), make(xv, yv), 10, size, "cifar10", names,
                     test_source="official")
