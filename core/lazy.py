"""Package attributes loaded on first use: a package's public names stay importable from the package
(``from measure import build_table``) without importing every module when the package is."""
from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a name to ``"module"`` (same name there) or
    ``"module:attribute"``."""
    def __getattr__(name: str):
        if name in table:
            module, _, attr = table[name].partition(":")
            return getattr(importlib.import_module(module), attr or name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
