"""bneck's accuracy layer: datasets split train / holdout / test, `fit`, and the accuracy estimators."""
from core.lazy import lazy_getattr

from .accuracy import Accuracy, AccuracyEstimator
from .data import load_data
from .errors import DataError, DivergedError
from .estimator import TrainEstimator, make_estimator
from .fit import FitResult, TrainConfig, fit, resolve_device, top1
from .split import DataSplit

__all__ = [
    "Accuracy", "AccuracyEstimator", "cluttered_settings", "cluttered_tensors", "DataError", "DataSplit",
    "DivergedError", "evaluate", "fit", "FitResult", "generate_cluttered", "ImageTensors", "load_data",
    "make_estimator",
    "read_checkpoint", "recalibrate_bn", "resolve_device", "SupernetConfig", "SupernetError", "SupernetEstimator",
    "top1", "TrainConfig", "TrainEstimator", "train_steps",
]


# Loaded on first use: importing the package stays light and free of import cycles, and benchmarks and
# scripts reach these through the package's public names instead of its modules.
_LAZY = {
    "evaluate": "train.fit",
    "recalibrate_bn": "train.fit",
    "train_steps": "train.fit",
    "ImageTensors": "train.tensors",
    "cluttered_settings": "train.cluttered:settings",
    "generate_cluttered": "train.cluttered:generate",
    "cluttered_tensors": "train.cluttered:as_tensors",
    "SupernetConfig": "train.supernet.train",
    "SupernetError": "train.supernet.errors",
    "SupernetEstimator": "train.supernet.estimator",
    "read_checkpoint": "train.supernet.train",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
