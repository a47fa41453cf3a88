"""Pareto fronts and hypervolume of (top1, latency, macs) points, with no Optuna in sight.

Conventions: top-1 is maximised, latency and MACs minimised. Hypervolume is computed on
*normalised losses* ``(-top1, latency / ref_latency, macs / ref_macs)`` against the point
``(0, 2, 2)``: twice the reference network's latency and MACs, and zero accuracy. The box is then
1 x 2 x 2, and ``hypervolume`` divides by its volume 4, so the figure lies in [0, 1], is fixed for a
space (not for the trials seen so far) and compares across samplers, seeds and runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Twice the reference's latency and MACs bounds the box: the v3 spaces reach about 1.6x the
# reference's MACs at their widest, so every sensible point counts, and a worse one adds nothing.
REF_FACTOR = 2.0


@dataclass(frozen=True)
class HVRef:
    """The hypervolume reference: the reference network's latency (ms) and MACs."""

    latency_ms: float
    macs: float

    def losses(self, top1, latency_ms, macs) -> np.ndarray:
        """N x 3 normalised losses (all minimised)."""
        return np.column_stack([-np.asarray(top1, float), np.asarray(latency_ms, float) / self.latency_ms,
                                np.asarray(macs, float) / self.macs])

    @property
    def point(self) -> np.ndarray:
        return np.array([0.0, REF_FACTOR, REF_FACTOR])

    @property
    def box(self) -> float:
        return 1.0 * REF_FACTOR * REF_FACTOR


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """True for the rows no other row dominates (all minimised; equal rows are all kept)."""
    losses = np.asarray(losses, float)
    n = len(losses)
    mask = np.ones(n, bool)
    for i in range(n):
        le = np.all(losses <= losses[i], axis=1)
        lt = np.any(losses < losses[i], axis=1)
        mask[i] = not np.any(le & lt)
    return mask


def front_mask(top1: Sequence[float], *others: Sequence[float]) -> np.ndarray:
    """Pareto mask for top-1 maximised and every other column minimised."""
    cols = [-np.asarray(top1, float)] + [np.asarray(o, float) for o in others]
    return pareto_mask(np.column_stack(cols)) if len(cols[0]) else np.zeros(0, bool)


def _area_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by 2-D points (minimised) inside the box below ``ref``."""
    area, best_y = 0.0, ref[1]
    for x, y in points[np.argsort(points[:, 0], kind="stable")]:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def hypervolume_raw(losses: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume dominated by minimised 3-D (or 2-D) points, bounded by ``ref``.

    Slices along the first axis: between consecutive first coordinates the dominated cross-section is
    the 2-D area of the points seen so far. O(n^2 log n), ample for a few thousand trials.
    """
    losses = np.asarray(losses, float).reshape(-1, len(ref))
    losses = losses[np.all(losses < ref, axis=1)]  # points outside the box add nothing
    if len(losses) == 0:
        return 0.0
    if losses.shape[1] == 2:
        return _area_2d(losses, ref)
    losses = losses[np.argsort(losses[:, 0], kind="stable")]
    volume = 0.0
    for i in range(len(losses)):
        upper = losses[i + 1, 0] if i + 1 < len(losses) else ref[0]
        if upper > losses[i, 0]:
            volume += (upper - losses[i, 0]) * _area_2d(losses[: i + 1, 1:], ref[1:])
    return volume


def hypervolume(ref: HVRef, top1, latency_ms, macs) -> float:
    """Normalised hypervolume in [0, 1] of the points (see the module note)."""
    if len(np.atleast_1d(top1)) == 0:
        return 0.0
    return hypervolume_raw(ref.losses(top1, latency_ms, macs), ref.point) / ref.box


def hypervolume_history(ref: HVRef, top1, latency_ms, macs) -> list[float]:
    """Hypervolume after each point in the given order (e.g. trial number)."""
    losses = ref.losses(top1, latency_ms, macs)
    out: list[float] = []
    front = np.empty((0, 3))
    for row in losses:
        # Only the front so far matters, and it stays small: keep it rather than all points.
        front = np.vstack([front, row])
        front = front[pareto_mask(front)]
        out.append(hypervolume_raw(front, ref.point) / ref.box)
    return out
