"""NetAdapt (MobileNetV3 paper, section 4.2): shrink a trained network under a latency budget."""

from core.errors import UserError
from core.lazy import lazy_getattr


class NetAdaptError(UserError):
    """A run that cannot start or resume as asked; the message names the problem and the fix."""


__all__ = [
    "channel_scores", "IMPORTANCE", "NetAdaptError", "propose", "run_netadapt", "same_structure", "shrink",
    "width_groups", "with_expand", "with_group_width",
]


# Loaded on first use: importing the package stays light and free of import cycles, and benchmarks and
# scripts reach these through the package's public names instead of its modules.
_LAZY = {
    "width_groups": "netadapt.groups",
    "same_structure": "netadapt.groups",
    "run_netadapt": "netadapt.loop",
    "propose": "netadapt.proposals",
    "with_expand": "netadapt.proposals",
    "with_group_width": "netadapt.proposals",
    "IMPORTANCE": "netadapt.names",
    "channel_scores": "netadapt.channels",
    "shrink": "netadapt.channels",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
