"""Optuna samplers from ``conf/sampler/*.yaml``, seeded."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from . import SearchError

SAMPLERS = ("tpe", "nsga2", "random", "gp")


def make_sampler(cfg: Mapping[str, Any], seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler ``cfg`` names; every option but ``name`` is passed to its constructor."""
    opts = {k: v for k, v in dict(cfg).items() if k != "name"}
    name = dict(cfg).get("name")
    if name not in SAMPLERS:
        raise SearchError(f"unknown sampler {name!r}: use sampler=one of {', '.join(SAMPLERS)}")
    cls = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
           "random": optuna.samplers.RandomSampler, "gp": optuna.samplers.GPSampler}[name]
    if name == "gp":
        opts.setdefault("warn_independent_sampling", False)
        try:
            import scipy  # noqa: F401  (GPSampler imports it lazily, on the first suggestion)
        except ImportError:
            raise SearchError("sampler=gp needs scipy: pip install scipy, or use sampler=tpe") from None
    try:
        return cls(seed=seed, **opts)
    except (TypeError, ValueError) as e:
        raise SearchError(f"sampler={name}: {e}".splitlines()[0]) from None
