"""What every bneck package shares and none owns: the command-line contract, user errors, atomic files.

Torch-free on purpose: a command that finds its arguments wrong answers before torch is imported.
"""
from .errors import UsageError, UserError

__all__ = ["UsageError", "UserError"]
