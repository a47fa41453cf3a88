"""NetAdapt proposals on specs: each cuts at least delta, is the smallest such cut, keeps the structure."""
from __future__ import annotations

import pytest

from measure import count_macs
from netadapt.groups import STEM, same_structure, width_groups
from netadapt.proposals import propose, smaller_multiples, with_expand, with_group_width
from netadapt.resources import spec_macs
from space import V3_LARGE, V3_SMALL, ArchSpec, parse_arch

# Traps: block 0 is residual with the stem and has no expand conv; block 3 has no expand conv and is
# stride 1, 24 -> 32 (out 24 would add a residual add); block 4 is 32 -> 40 stride 1 (40 -> 32 would
# add one too); block 5 expands 40 -> 32 (< its input), so input width 32 would drop its expand conv.
TRICKY = parse_arch("stem16 k3_e16_c16_re k3_e64_c24_s2_re k3_e72_c24_re k3_e24_c32_re "
                    "k3_e96_c40_se_hs k3_e32_c24_s2_hs last144 head256")
ARCHS = {"v3_small": V3_SMALL, "v3_large": V3_LARGE, "tricky": TRICKY}


def macs(arch: ArchSpec) -> float:
    return float(spec_macs(arch, 64))


def test_width_groups_follow_residual_adds():
    groups = [(g.width, g.nodes) for g in width_groups(V3_LARGE)]
    assert groups == [(16, (STEM, 0)), (24, (1, 2)), (40, (3, 4, 5)), (80, (6, 7, 8, 9)),
                      (112, (10, 11)), (160, (12, 13, 14))]
    small = [g.nodes for g in width_groups(V3_SMALL)]
    assert small == [(STEM,), (0,), (1, 2), (3, 4, 5), (6, 7), (8, 9, 10)]  # block 0 has stride 2


def test_group_width_moves_stem_and_tied_expand_together():
    g0 = width_groups(V3_LARGE)[0]
    new = with_group_width(V3_LARGE, g0, 8)
    assert new.stem == 8 and new.blocks[0].expand == 8 and new.blocks[0].out == 8
    assert new.blocks[1].expand == 64 and same_structure(V3_LARGE, new)
    g = width_groups(TRICKY)[1]  # (1, 2): block 3 reads it without an expand conv
    new = with_group_width(TRICKY, g, 16)
    assert [b.out for b in new.blocks[1:3]] == [16, 16] and new.blocks[3].expand == 16


def test_smaller_multiples_stay_on_the_grid():
    assert list(smaller_multiples(40, 24)) == [32, 24]
    assert list(smaller_multiples(43, 1)) == [40, 32, 24, 16, 8]
    assert list(smaller_multiples(8, 1)) == []


@pytest.mark.parametrize("name", ARCHS)
def test_every_proposal_cuts_delta_is_minimal_and_keeps_structure(name):
    arch = ARCHS[name]
    base = macs(arch)
    delta = 0.02 * base
    props = propose(arch, macs, delta)
    assert props.made, props.skipped
    kinds = {p.kind for p in props.made}
    assert kinds == {"expand", "width"}
    for p in props.made:
        new = p.arch
        assert isinstance(new, ArchSpec) and same_structure(arch, new), p.label
        assert p.cost == macs(new) and base - p.cost >= delta, p.label
        assert p.new % 8 == 0 and p.new < p.old, p.label
        for cin, b in zip(new.in_channels(), new.blocks):
            if b.stride == 1 and b.has_residual(cin):
                assert cin == b.out
            if b.has_expand(cin):
                assert b.expand >= b.out
        if p.kind == "expand":
            (i,) = p.blocks
            assert new.blocks[i].expand == p.new and new.blocks[i].has_expand(new.in_channels()[i])
            assert new == with_expand(arch, i, p.new)
            larger = [w for w in range(p.new + 8, p.old, 8)]
            remake = lambda w, i=i: with_expand(arch, i, w)  # noqa: E731
        else:
            group = next(g for g in width_groups(arch) if g.nodes == p.blocks)
            for n in group.nodes:
                assert (new.stem if n == STEM else new.blocks[n].out) == p.new
            larger = [w for w in range(p.new + 8, p.old, 8)]
            remake = lambda w, group=group: with_group_width(arch, group, w)  # noqa: E731
        # minimal: every larger width on the grid either changes the structure or cuts too little
        for w in larger:
            try:
                cand = remake(w)
            except ValueError:
                continue
            assert not same_structure(arch, cand) or base - macs(cand) < delta, (p.label, w)


def test_structure_traps_are_skipped():
    props = propose(TRICKY, macs, 1.0)  # any cut will do: the largest width that keeps the structure
    width = {p.blocks: p.new for p in props.made if p.kind == "width"}
    assert width[(4,)] == 24  # 32 would make block 4 residual and drop block 5's expand conv
    assert width[(3,)] == 16  # 24 would make block 3 (24 -> 32, stride 1) residual
    assert width[(STEM, 0)] == 8 and width[(1, 2)] == 16


def test_no_proposal_reaches_an_impossible_cut():
    props = propose(V3_SMALL, macs, macs(V3_SMALL))  # cutting everything is impossible
    assert props.made == [] and len(props.skipped) == 10 + 6


def test_closed_form_macs_match_measure():
    for arch, size in ((V3_LARGE, 224), (TRICKY, 33), (with_expand(V3_SMALL, 4, 200), 64)):
        assert spec_macs(arch, size) == count_macs(arch, size)
