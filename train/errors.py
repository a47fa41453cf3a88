"""The two ways the accuracy proxy refuses to go on: bad data, or a loss that blew up."""

from core.errors import UsageError, UserError


class DataError(UserError):
    """A dataset could not be loaded. The message names the problem and the fix, on one line."""


class DivergedError(UserError, RuntimeError):
    """The training loss stopped being finite. The message names the step and the loss value."""


class DeviceError(UsageError):
    """``train.device`` names a device this host does not have. The message names the fix."""
