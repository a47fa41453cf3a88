"""What every accuracy estimator returns (``Accuracy``) and promises (``AccuracyEstimator``).

Kept apart from the estimators themselves (``train.estimator``, ``train.supernet``) so each imports this
and the registry in ``train.estimator`` can import them without a loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from space import ArchSpec


@dataclass(frozen=True)
class Accuracy:
    top1: float  # on holdout: the only figure selection may read
    test_top1: float | None  # on test: reported beside it, never selected on (None when not asked for)
    loss: float  # holdout cross-entropy
    steps: int  # optimiser steps this estimate took
    seconds: float
    # train.seeds > 1: each seed's holdout top-1 (top1 is their mean), in seed order; None for one seed
    per_seed: tuple[float, ...] | None = None


class AccuracyEstimator(Protocol):
    name: str

    def protocol(self) -> dict:
        """What makes two results comparable: dataset and splits, input size, estimator and its budget."""

    def __call__(self, arch: ArchSpec, label: str = "") -> Accuracy:
        """The accuracy of ``arch`` under this estimator."""
