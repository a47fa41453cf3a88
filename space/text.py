"""The two text forms of an architecture, both exact round trips.

String form, one whitespace-separated token per part, in the spirit of timm's block strings::

    stem16 k3_e16_c16_re k3_e64_c24_s2_re ... k5_e960_c160_se_hs last960 head1280 drop0.2

A block token is ``k<kernel>_e<expand>_c<out>[_s<stride>][_se]_<re|hs>``; stride 1 and no-SE are
left out to keep the common case short. JSON form: the dataclass fields, blocks as a list of dicts.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .references import REFERENCES
from .spec import ArchError, ArchSpec, BlockSpec

_BLOCK = re.compile(r"k(?P<k>\d+)_e(?P<e>\d+)_c(?P<c>\d+)(?:_s(?P<s>\d+))?(?P<se>_se)?_(?P<act>re|hs)")
_SCALAR = re.compile(r"(?P<key>stem|last|head|drop)(?P<val>\d+(?:\.\d+)?)")


def format_block(b: BlockSpec) -> str:
    stride = f"_s{b.stride}" if b.stride != 1 else ""
    se = "_se" if b.se else ""
    return f"k{b.kernel}_e{b.expand}_c{b.out}{stride}{se}_{b.act.lower()}"


def format_arch(arch: ArchSpec) -> str:
    blocks = " ".join(format_block(b) for b in arch.blocks)
    return f"stem{arch.stem} {blocks} last{arch.last_conv} head{arch.head} drop{arch.dropout:g}"


def _parse_string(text: str) -> ArchSpec:
    fields: dict = {}
    blocks = []
    for token in text.split():
        if m := _BLOCK.fullmatch(token):
            blocks.append(
                BlockSpec(
                    kernel=int(m["k"]), expand=int(m["e"]), out=int(m["c"]), se=bool(m["se"]),
                    act=m["act"].upper(), stride=int(m["s"] or 1),
                )
            )
        elif m := _SCALAR.fullmatch(token):
            key = {"last": "last_conv", "drop": "dropout"}.get(m["key"], m["key"])
            fields[key] = float(m["val"]) if key == "dropout" else int(float(m["val"]))
        else:
            raise ArchError(
                f"cannot read token {token!r}: expected stem<C>, k<K>_e<E>_c<C>[_s2][_se]_<re|hs>, "
                "last<C>, head<C> or drop<P> (see space.format_arch)"
            )
    missing = [k for k in ("stem", "last_conv", "head") if k not in fields]
    if missing:
        raise ArchError(f"architecture string lacks {', '.join(missing)}: it must hold stem<C>, last<C> and head<C>")
    return ArchSpec(blocks=tuple(blocks), **fields)


def to_dict(arch: ArchSpec) -> dict:
    return {
        "stem": arch.stem,
        "blocks": [
            {"kernel": b.kernel, "expand": b.expand, "out": b.out, "se": b.se, "act": b.act, "stride": b.stride}
            for b in arch.blocks
        ],
        "last_conv": arch.last_conv,
        "head": arch.head,
        "dropout": arch.dropout,
    }


def to_json(arch: ArchSpec, indent: int | None = 2) -> str:
    return json.dumps(to_dict(arch), indent=indent)


def from_dict(data: dict) -> ArchSpec:
    if not isinstance(data, dict):
        raise ArchError(f"architecture JSON must be an object, got {type(data).__name__}")
    unknown = set(data) - {"stem", "blocks", "last_conv", "head", "dropout", "name"}
    if unknown:
        raise ArchError(f"architecture JSON has unknown keys {sorted(unknown)}: allowed are stem, blocks, last_conv, "
                        f"head, dropout")
    try:
        blocks = []
        for i, b in enumerate(data["blocks"]):
            extra = set(b) - {"kernel", "expand", "out", "se", "act", "stride"}
            if extra:
                raise ArchError(f"block {i}: unknown keys {sorted(extra)}")
            blocks.append(BlockSpec(**b))
        return ArchSpec(
            stem=data["stem"], blocks=tuple(blocks), last_conv=data["last_conv"], head=data["head"],
            dropout=data.get("dropout", 0.2), name=data.get("name"),
        )
    except KeyError as e:
        raise ArchError(f"architecture JSON lacks the key {e.args[0]!r}") from None
    except TypeError as e:
        raise ArchError(f"malformed architecture JSON: {e}") from None


def parse_arch(text: str | Path) -> ArchSpec:
    """An ``ArchSpec`` from a reference name, an arch string, a JSON text or a path to a ``.json`` file."""
    text = str(text).strip()
    if text in REFERENCES:
        return REFERENCES[text]
    if text.startswith("{"):
        try:
            return from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ArchError(f"malformed architecture JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise ArchError(f"architecture file {text} does not exist: pass an existing .json path, an arch string "
                            f"or a reference name")
        try:
            return from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ArchError(f"{text} is not valid JSON ({e.msg} at line {e.lineno}): "
                            f"write it with space.to_json") from None
    if not text:
        raise ArchError("empty architecture: give a reference name (v3_large, v3_small), an arch string "
                        "or a .json path")
    if " " not in text and "_" in text and not text.startswith(("stem", "k")):
        raise ArchError(f"unknown architecture {text!r}: references are {', '.join(REFERENCES)}")
    return _parse_string(text)
