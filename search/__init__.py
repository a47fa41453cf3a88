"""bneck's architecture search: an Optuna study over a space, its results, its Pareto plots.

``python -m search.run +space=v3_large`` runs (or resumes) a study; ``python -m search.plot`` draws
every front under ``results/``. Knows nothing of how latency is obtained (``measure``) or how
accuracy is estimated (``train``): it calls them with ``ArchSpec``s.
"""

from core.errors import UserError


class SearchError(UserError):
    """Bad search input (storage, settings, budget); the message names the problem, in one line."""


__all__ = ["SearchError"]
