"""Every figure bneck draws, in one place. As in ``optuna.visualization``: each package computes a plain
info object (``search.plot.pareto_info``, ``netadapt.report.trajectory_info``, ``measure.lut``), and a
``draw_*`` function here turns it into PNG bytes. Tests compare the info, not pixels.

Depends on matplotlib and ``space`` (reference names) only, so every package may import it.
"""
from .canvas import figure, png
from .fidelity import FidelityInfo, Panel, draw_fidelity
from .latency import ValidationInfo, draw_validation
from .pareto import OverviewInfo, ParetoInfo, Trajectory, draw_overview, draw_pareto
from .trajectory import TrajectoryInfo, draw_trajectory
from .versus import Curve, VersusInfo, draw_versus

__all__ = [
    "Curve", "FidelityInfo", "OverviewInfo", "Panel",
    "ParetoInfo", "Trajectory", "TrajectoryInfo", "ValidationInfo", "VersusInfo",
    "draw_fidelity", "draw_overview", "draw_pareto", "draw_versus",
    "draw_trajectory", "draw_validation", "figure", "png",
]
