"""bneck's accuracy layer: datasets split train / holdout / test, `fit`, and the accuracy estimators."""
from .accuracy import Accuracy, AccuracyEstimator
from .data import load_data
from .errors import DataError, DivergedError
from .estimator import TrainEstimator, make_estimator
from .fit import FitResult, TrainConfig, fit, resolve_device, top1
from .split import DataSplit

__all__ = [
    "Accuracy", "AccuracyEstimator", "DataError", "DataSplit", "DivergedError", "FitResult", "TrainConfig",
    "TrainEstimator", "fit", "load_data", "make_estimator", "resolve_device", "top1",
]
