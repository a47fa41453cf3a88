"""NetAdapt (MobileNetV3 paper, section 4.2): shrink a trained network under a latency budget."""

from core.errors import UserError


class NetAdaptError(UserError):
    """A run that cannot start or resume as asked; the message names the problem and the fix."""


__all__ = ["NetAdaptError"]
