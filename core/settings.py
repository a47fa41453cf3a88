"""The rules of every setting, declared once on the structured configs and checked at compose time.

Each package keeps its settings as dataclasses (``train/settings.py``, ``measure/settings.py``,
``search/settings.py``, ``netadapt/settings.py``) registered in Hydra's ConfigStore and named first in
the defaults list of their YAML (``defaults: [search_schema, _self_, ...]``), so Hydra merges the YAML
and the command line into typed nodes. A field made with :func:`rule` carries its bounds or choices;
:class:`Settings` checks them in ``__post_init__``, which ``OmegaConf.to_object`` runs on the composed
config (``core.cli.compose``). A value OmegaConf cannot convert (``train.lr=abc``) and a value out of
range (``train.batch_size=0``) end in the same one-line message, which names the key, the value and a
value that works.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf.errors import ValidationError

from .errors import UsageError


@dataclass(frozen=True)
class Rule:
    kind: str  # int | float | bool | str | choice | list
    example: Any = None
    optional: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()
    pattern: str | None = None  # str: a full match is required
    hint: str = ""  # what the pattern means, for the message

    def ok(self, v) -> bool:
        if v is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "choice":
            return v in self.choices
        if self.kind == "list":
            return isinstance(v, (list, tuple)) and len(v) > 0
        if self.kind == "str":
            return isinstance(v, str) and (self.pattern is None or re.fullmatch(self.pattern, v) is not None)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.kind == "int" and not (isinstance(v, int) or float(v).is_integer()):
            return False
        if not math.isfinite(v):
            return False
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def describe(self) -> str:
        if self.kind == "bool":
            what = "true or false"
        elif self.kind == "choice":
            what = "one of " + ", ".join(map(_show, self.choices))
        elif self.kind == "str":
            what = self.hint or "a string"
        elif self.kind == "list":
            what = "a non-empty list"
        else:
            bounds = [f"{op} {_show(b)}" for op, b in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                      if b is not None]
            what = ("an integer" if self.kind == "int" else "a number") + (" " + " and ".join(bounds) if bounds else "")
        return f"null or {what}" if self.optional else what

    def message(self, key: str, value) -> str:
        if self.kind == "choice":
            return (f"unknown {key.replace('.', ' ').replace('_', ' ')} {value!r}: use one of "
                    f"{', '.join(map(_show, self.choices))} (e.g. {key}={_show(self.example)})")
        return f"{key}={_show(value)} must be {self.describe()}: pass e.g. {key}={_show(self.example)}"


def _show(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v if re.fullmatch(r"[A-Za-z0-9_./:+-]+", v) else repr(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def rule(default, kind: str, *, example=None, **bounds) -> Any:
    """A dataclass field with ``default`` and its rule; ``example`` (default: ``default``) is the value
    the error message proposes."""
    r = Rule(kind, example=default if example is None else example, **bounds)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"rule": r})
    return field(default=default, metadata={"rule": r})


def integer(default, *, optional=False, **bounds):
    return rule(default, "int", optional=optional or default is None, **bounds)


def number(default, *, optional=False, **bounds):
    return rule(default, "float", optional=optional or default is None, **bounds)


def flag(default: bool):
    return rule(default, "bool")


def choice(default, choices: Sequence, **kw):
    return rule(default, "choice", choices=tuple(choices), **kw)


def text(default, *, optional=False, **kw):
    return rule(default, "str", optional=optional or default is None, **kw)


class Settings:
    """Base of the structured configs: ``__post_init__`` checks every field made with :func:`rule`.

    ``PREFIX`` is where the node sits in the composed config (``train``, ``latency``, ``sampler``;
    empty for a primary config), so messages name the key as the user types it.
    """

    PREFIX: ClassVar[str] = ""

    def __post_init__(self):
        check(self, self.PREFIX)


def check(obj, prefix: str = "", rules_of: type | None = None) -> None:
    """Raise :class:`UsageError` for the first field of ``obj`` that breaks its rule (the rules of the
    dataclass ``rules_of``, by default ``obj``'s own)."""
    for f in dataclasses.fields(rules_of or obj):
        r = f.metadata.get("rule")
        if r is None or not hasattr(obj, f.name):
            continue
        v = getattr(obj, f.name)
        if not r.ok(v):
            raise UsageError(r.message(f"{prefix}.{f.name}" if prefix else f.name, v))


def plain(cfg) -> dict:
    """The one way a config becomes a dict: an OmegaConf node with its interpolations resolved, a mapping
    copied, None empty."""
    from collections.abc import Mapping

    from omegaconf import OmegaConf

    if cfg is None:
        return {}
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise TypeError(f"expected a mapping, got {type(cfg).__name__}")
    return dict(cfg)


# -- looking a rule up by its key, for OmegaConf's conversion errors --------------------------------------
_BY_PREFIX: dict[str, list[type]] = {}


def register(cls: type) -> type:
    """Make ``cls``'s rules findable by key (for groups typed ``Any`` in the primary schema: sampler)."""
    _BY_PREFIX.setdefault(cls.PREFIX, []).append(cls)
    return cls


def rule_for(full_key: str, root: type | None) -> Rule | None:
    """The rule of ``full_key`` (``train.lr``) under the primary schema ``root``."""
    parts = full_key.split(".")
    cls = root
    if root is None:
        return None
    for i, part in enumerate(parts):
        if cls is None:  # a group typed Any in the primary schema (sampler): its options' schemas
            prefix = ".".join(parts[:i])
            for c in _BY_PREFIX.get(prefix, []):
                g = next((g for g in dataclasses.fields(c) if g.name == ".".join(parts[i:])), None)
                if g is not None and "rule" in g.metadata:
                    return g.metadata["rule"]
            return None
        f = next((f for f in dataclasses.fields(cls) if f.name == part), None)
        if f is None:
            return None
        if i == len(parts) - 1:
            return f.metadata.get("rule")
        t = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        cls = t if isinstance(t, type) and dataclasses.is_dataclass(t) else None
    return None


def conversion_message(e: Exception, root: type | None) -> str | None:
    """One line for an OmegaConf validation error (a value of the wrong type) anywhere in ``e``'s chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        key = getattr(e, "full_key", None)
        if key and isinstance(e, ValidationError):  # a value OmegaConf could not convert to the field's type
            r = rule_for(str(key), root)
            if r is not None:
                return r.message(str(key), e.value)
        e = e.__cause__ or e.__context__
    return None
