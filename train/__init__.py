"""bneck's accuracy proxy: the datasets, `fit` (seeded SGD + cosine) and `top1`."""
from .data import DataSplit, load_data
from .errors import DataError, DivergedError
from .fit import FitResult, TrainConfig, fit, resolve_device, top1

__all__ = [
    "DataError", "DataSplit", "DivergedError", "FitResult", "TrainConfig",
    "fit", "load_data", "resolve_device", "top1",
]
