"""bneck's architecture space: specs, references, the network builder and search spaces."""
from .references import REFERENCES, V3_LARGE, V3_SMALL, reference_title, scale_width
from .searchspace import SearchSpace, available_spaces
from .spec import ArchError, ArchSpec, BlockSpec, make_divisible, se_width
from .text import format_arch, from_dict, parse_arch, to_dict, to_json

load_space = SearchSpace.load


def __getattr__(name):
    # torch is imported on first use of the builder, not with the package: a command that only
    # parses its arguments and finds them wrong answers in a fraction of a second.
    if name == "build_model":
        from .model import build_model

        return build_model
    raise AttributeError(f"module 'space' has no attribute {name!r}")

__all__ = [
    "ArchError", "ArchSpec", "BlockSpec", "REFERENCES", "SearchSpace", "V3_LARGE", "V3_SMALL",
    "available_spaces", "build_model", "format_arch", "from_dict", "load_space", "make_divisible",
    "parse_arch", "reference_title", "scale_width", "se_width", "to_dict", "to_json",
]
