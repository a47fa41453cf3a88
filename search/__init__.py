"""bneck's architecture search: an Optuna study over a space, its results, its Pareto plots.

``python -m search.run +space=v3_large`` runs (or resumes) a study; ``python -m search.plot`` draws
every front under ``results/``. Knows nothing of how latency is obtained (``measure``) or how
accuracy is estimated (``train``): it calls them with ``ArchSpec``s.
"""

from core.errors import UserError
from core.lazy import lazy_getattr


class SearchError(UserError):
    """Bad search input (storage, settings, budget); the message names the problem, in one line."""


# ``stats`` (rank-fidelity statistics) and ``fidelity_report`` (its tables and verdicts) are public as modules:
# ``search.fidelity`` and the fidelity benchmarks share them (``from search import stats``).
__all__ = [
    "fidelity_report", "pareto_rows", "read_csv", "Search", "SearchError", "stats",
]


# Loaded on first use: importing the package stays light and free of import cycles, and benchmarks and
# scripts reach these through the package's public names instead of its modules.
_LAZY = {
    "Search": "search.study",
    "pareto_rows": "search.results",
    "read_csv": "search.results",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
