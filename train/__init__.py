"""bneck's accuracy layer: datasets split train / holdout / test, `fit`, and the accuracy estimators."""
from core.lazy import lazy_getattr

from .errors import DataError, DivergedError

__all__ = [
    "Accuracy", "AccuracyEstimator", "cluttered_settings", "cluttered_tensors", "DataError", "DataSplit",
    "DivergedError", "evaluate", "fit", "FitResult", "generate_cluttered", "ImageTensors", "load_data",
    "make_estimator",
    "read_checkpoint", "recalibrate_bn", "resolve_device", "SupernetConfig", "SupernetError", "SupernetEstimator",
    "top1", "TrainConfig", "TrainEstimator", "train_steps",
]


# Loaded on first use: importing the package (or its torch-free ``train.settings``) stays light and free of
# import cycles, so bad input and --help answer before torch loads; benchmarks and scripts reach these through
# the package's public names instead of its modules.
_LAZY = {
    "Accuracy": "train.accuracy",
    "AccuracyEstimator": "train.accuracy",
    "load_data": "train.data",
    "TrainEstimator": "train.estimator",
    "make_estimator": "train.estimator",
    "FitResult": "train.loop",
    "TrainConfig": "train.loop",
    "fit": "train.loop",
    "resolve_device": "train.loop",
    "top1": "train.loop",
    "DataSplit": "train.split",
    "evaluate": "train.loop",
    "recalibrate_bn": "train.loop",
    "train_steps": "train.loop",
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
