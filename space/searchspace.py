"""Search spaces: which choices each block may take, read from ``conf/space/*.yaml``.

A YAML lists the blocks in order; each field is a value (fixed) or a list (choices)::

    name: v3_large
    reference: v3_large        # a point of this space, enqueued first by search
    stem: 16
    last_conv: 960             # or "6x": six times the last block's output, as MobileNetV3
    head: 1280
    dropout: 0.2
    blocks:
      - {kernel: [3, 5], expand: [48, 64, 96], out: 24, se: [false, true], act: [RE, HS], stride: 2}

Only fields with more than one choice become Optuna parameters, named ``b<NN>.<field>``
(``b03.kernel``), so trials read like the table they came from.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

from .references import REFERENCES
from .skeleton import SIX_X, last_conv_width
from .spec import ArchError, ArchSpec, BlockSpec

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "space"
FIELDS = ("kernel", "expand", "out", "se", "act", "stride")


def available_spaces() -> list[str]:
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class BlockChoices:
    kernel: tuple[int, ...]
    expand: tuple[int, ...]
    out: tuple[int, ...]
    se: tuple[bool, ...]
    act: tuple[str, ...]
    stride: tuple[int, ...]

    def free_fields(self) -> list[str]:
        return [f for f in FIELDS if len(getattr(self, f)) > 1]

    def size(self) -> int:
        return math.prod(len(getattr(self, f)) for f in FIELDS)

    def points(self):
        for values in itertools.product(*(getattr(self, f) for f in FIELDS)):
            yield BlockSpec(**dict(zip(FIELDS, values)))


def _choices(value, where: str, field: str) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not values:
        raise ArchError(f"{where}: {field} has an empty list of choices")
    if len(set(values)) != len(values):
        raise ArchError(f"{where}: {field} lists a choice twice: {list(values)}")
    return values


class SearchSpace:
    def __init__(self, name: str, stem: int, blocks, last_conv, head: int, dropout: float = 0.2,
                 reference: str | None = None):
        self.name = name
        self.stem = stem
        self.blocks: tuple[BlockChoices, ...] = tuple(blocks)
        self.last_conv = last_conv  # an int, or "6x"
        self.head = head
        self.dropout = dropout
        self.reference: ArchSpec | None = None
        self._check_blocks()
        if reference is not None:
            if reference not in REFERENCES:
                raise ArchError(f"space {name}: unknown reference {reference!r}; known: {', '.join(REFERENCES)}")
            self.reference = REFERENCES[reference]
            if not self.contains(self.reference):
                raise ArchError(f"space {name}: its reference {reference} is not a point of it; widen the choices")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg) -> SearchSpace:
        """From a mapping (a loaded YAML or Hydra's ``cfg.space``)."""
        cfg = dict(cfg)
        name = cfg.get("name", "space")
        for key in ("stem", "blocks", "head", "last_conv"):
            if key not in cfg:
                raise ArchError(f"space {name}: missing key {key!r}")
        blocks = []
        for i, raw in enumerate(cfg["blocks"]):
            raw = dict(raw)
            where = f"space {name}, block {i}"
            unknown = set(raw) - set(FIELDS)
            if unknown:
                raise ArchError(f"{where}: unknown keys {sorted(unknown)}; allowed: {', '.join(FIELDS)}")
            raw.setdefault("se", False)
            raw.setdefault("act", "RE")
            raw.setdefault("stride", 1)
            missing = [f for f in ("kernel", "expand", "out") if f not in raw]
            if missing:
                raise ArchError(f"{where}: missing {', '.join(missing)}")
            blocks.append(BlockChoices(**{f: _choices(raw[f], where, f) for f in FIELDS}))
        return cls(name, cfg["stem"], blocks, cfg["last_conv"], cfg["head"], cfg.get("dropout", 0.2),
                   cfg.get("reference"))

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        """A space by name (``conf/space/<name>.yaml``) or from a YAML path."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = CONF_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ArchError(f"unknown space {name_or_path!r}: choose one of {', '.join(available_spaces())} "
                            f"or give a path to a space YAML")
        with open(path) as f:
            data = yaml.safe_load(f)
        if not isinstance(data, dict):
            raise ArchError(f"{path} is not a space YAML (expected a mapping with stem, blocks, last_conv, head)")
        data.setdefault("name", path.stem)
        return cls.from_config(data)

    def _check_blocks(self) -> None:
        # Every combination must build: try each block choice against each input width it can see.
        if not self.blocks:
            raise ArchError(f"space {self.name}: no blocks")
        ins = {self.stem}
        for i, bc in enumerate(self.blocks):
            for cin, b in itertools.product(sorted(ins), bc.points()):
                try:
                    ArchSpec(cin, (b,), 8, 8)
                except ArchError as e:
                    raise ArchError(f"space {self.name}, {str(e).replace('block 0', f'block {i}')}") from None
            ins = set(bc.out)
        if self.last_conv != SIX_X and (not isinstance(self.last_conv, int) or self.last_conv <= 0):
            raise ArchError(f"space {self.name}: last_conv must be a positive integer or '6x', got {self.last_conv!r}")

    # -- points -------------------------------------------------------------------------------
    def _arch(self, blocks: list[BlockSpec]) -> ArchSpec:
        return ArchSpec(self.stem, tuple(blocks), last_conv_width(self.last_conv, blocks[-1].out), self.head,
                        self.dropout)

    def suggest(self, trial) -> ArchSpec:
        """The architecture an Optuna trial picks; parameters are categorical, named ``bNN.field``."""
        blocks = []
        for i, bc in enumerate(self.blocks):
            kw = {}
            for f in FIELDS:
                options = getattr(bc, f)
                kw[f] = trial.suggest_categorical(f"b{i:02d}.{f}", list(options)) if len(options) > 1 else options[0]
            blocks.append(BlockSpec(**kw))
        return self._arch(blocks)

    def params_of(self, arch: ArchSpec) -> dict:
        """The Optuna parameters that make ``arch`` (for ``study.enqueue_trial``)."""
        if not self.contains(arch):
            raise ArchError(f"architecture is not a point of space {self.name}")
        return {f"b{i:02d}.{f}": getattr(b, f) for i, (b, bc) in enumerate(zip(arch.blocks, self.blocks))
                for f in bc.free_fields()}

    def contains(self, arch: ArchSpec) -> bool:
        if len(arch.blocks) != len(self.blocks) or arch.stem != self.stem or arch.head != self.head:
            return False
        if arch.dropout != self.dropout:
            return False
        if arch.last_conv != last_conv_width(self.last_conv, arch.blocks[-1].out):
            return False
        return all(getattr(b, f) in getattr(bc, f) for b, bc in zip(arch.blocks, self.blocks) for f in FIELDS)

    def sample(self, rng: random.Random | int | None = None) -> ArchSpec:
        """A uniformly random point (seeded by ``rng``)."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return self._arch([BlockSpec(**{f: rng.choice(getattr(bc, f)) for f in FIELDS}) for bc in self.blocks])

    @property
    def size(self) -> int:
        """Number of distinct architectures in the space."""
        return math.prod(bc.size() for bc in self.blocks)

    def __len__(self) -> int:
        return self.size

    def reachable_blocks(self):
        """Every (index, in_channels, stride_before, BlockSpec) a point of the space can contain.

        ``stride_before`` is the product of all strides before the block, stem included, so a
        block sees an input of ``ceil(input_size / stride_before)`` pixels: what a per-block
        latency table needs to key its entries.
        """
        ins = {(self.stem, 2)}
        for i, bc in enumerate(self.blocks):
            nxt = set()
            for (cin, s), b in itertools.product(sorted(ins), bc.points()):
                yield i, cin, s, b
                nxt.add((b.out, s * b.stride))
            ins = nxt

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self.blocks)} blocks, {self.size:.3g} points)"
