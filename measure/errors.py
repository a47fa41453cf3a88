"""The error of the measurement layer: a measurement that cannot be made as asked."""
from __future__ import annotations

from core.errors import UserError


class MeasureError(UserError):
    """A measurement that cannot be made as asked; the message names the problem and the fix."""
