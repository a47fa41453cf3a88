"""benchmarks/latency_lut.py: the validation sets it times (no timing here)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from measure import count_macs
from netadapt.groups import same_structure
from space import V3_LARGE, V3_SMALL, build_model, format_arch, scale_width

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ll():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("benchmarks.latency_lut")


def test_netadapt_shaped_networks_are_seeded_nonuniform_shrinks_of_the_references(ll):
    nets = ll.netadapt_shaped()
    assert [format_arch(a) for _, a in nets] == [format_arch(a) for _, a in ll.netadapt_shaped()]
    assert len(nets) == 10 and {s for s, _ in nets} == {"netadapt-shaped"}
    for i, (_, arch) in enumerate(nets):
        start = V3_SMALL if i < 5 else V3_LARGE
        assert same_structure(start, arch)  # NetAdapt never changes structure, only widths
        ratio = count_macs(arch, 224) / count_macs(start, 224)
        assert 0.4 < ratio <= 0.9
        uniform = {format_arch(scale_width(start, m / 100)) for m in range(25, 100)}
        assert format_arch(arch) not in uniform
    build_model(nets[0][1])  # builds


def test_sets_cover_every_space_the_references_and_netadapt_shapes(ll):
    sets = ll.sets(3)
    assert set(sets) == {"random v3_large", "random v3_small", "references", "netadapt-shaped"}
    assert [len(v) for v in sets.values()] == [3, 3, 8, 10]
