"""What every bneck package shares and none owns: the command-line contract, user errors, atomic files.

Torch-free on purpose: a command that finds its arguments wrong answers before torch is imported.
"""
from .errors import UsageError, UserError
from .lazy import lazy_getattr

__all__ = [
    "compose", "plain", "quiet_warnings", "read_jsonl", "run", "UsageError", "UserError",
]


# Loaded on first use: importing the package stays light and free of import cycles, and benchmarks and
# scripts reach these through the package's public names instead of its modules.
_LAZY = {
    "compose": "core.cli",
    "quiet_warnings": "core.cli",
    "run": "core.cli",
    "plain": "core.settings",
    "read_jsonl": "core.files",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
