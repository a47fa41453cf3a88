"""The one base class of errors a user can fix: reported in one line with exit status 2, no traceback."""
from __future__ import annotations


class UserError(ValueError):
    """Bad input or a run the user must fix; the message names the problem and the fix, in one line."""


class UsageError(UserError):
    """A bad command line or config value."""
