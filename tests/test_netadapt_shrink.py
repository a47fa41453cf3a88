"""Weight transfer: with the dropped channels' outgoing weights zeroed, shrinking changes no output."""
from __future__ import annotations

import copy
import functools

import pytest
import torch

from measure import count_macs
from netadapt.channels import channel_scores, choose_channels, layer_table, node_sizes, shrink
from netadapt.groups import width_groups
from netadapt.proposals import propose, with_expand, with_group_width
from space import V3_LARGE, V3_SMALL, build_model, parse_arch
from space.skeleton import module_paths

TRICKY = parse_arch("stem16 k3_e16_c16_re k3_e64_c24_s2_re k3_e72_c24_re k3_e24_c32_se_re "
                    "k3_e96_c40_se_hs k3_e32_c24_s2_hs last144 head256")


def random_net(arch, size=16):
    return copy.deepcopy(_random_net(arch, size))


@functools.cache
def _random_net(arch, size, seed=0, num_classes=7):
    """A network whose channels all matter: random BN affine, BN statistics from real forward passes."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.momentum = None  # cumulative average over the passes below
            elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and m.bias is not None:
                m.bias.normal_(0, 0.2)
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, m.in_features ** -0.5)
        model.train()
        model(torch.randn(6, 3, size, size))
    return model.double().eval()  # float64: float32 rounding is amplified by the random weights


def zero_dropped(model, keep):
    """Zero the weights that read each channel about to be dropped (SE fc1 and fc2 included)."""
    sizes = node_sizes(model.arch)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for layer in layer_table(model.arch):
            if layer.kind != "conv" or layer.reads not in keep:
                continue
            dropped = torch.ones(sizes[layer.reads], dtype=torch.bool)
            dropped[keep[layer.reads]] = False
            mods[layer.path].weight[:, dropped] = 0


def assert_exact(arch, new_arch, size=16):
    model = random_net(arch, size=size)
    keep = choose_channels(model, new_arch)
    assert any(len(k) < n for k, n in zip(keep.values(), node_sizes(arch).values())), "nothing dropped"
    x = torch.randn(3, 3, size, size, dtype=torch.float64)
    before_zeroing = model(x)
    zero_dropped(model, keep)
    # zeroing only lowers the dropped channels' own scores, so the choice does not move
    assert all(torch.equal(keep[n], k) for n, k in choose_channels(model, new_arch).items())
    expected = model(x)
    assert not torch.allclose(before_zeroing, expected, atol=1e-3)  # the dropped channels did matter
    small = shrink(model, new_arch).double()
    assert small.arch == new_arch and not small.training
    torch.testing.assert_close(small(x), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("arch", [V3_SMALL, V3_LARGE, TRICKY], ids=["v3_small", "v3_large", "tricky"])
def test_proposals_transfer_exactly(arch):
    props = propose(arch, lambda a: float(count_macs(a, 32)), 0.02 * count_macs(arch, 32)).made
    assert {p.kind for p in props} == {"expand", "width"}
    # float64 convolutions are slow: every proposal of TRICKY, of the references one of each kind (a residual
    # group among them; V3-Small's expansion is an SE block's, and its stem group too)
    if arch is V3_LARGE:
        props = [next(p for p in props if p.kind == "expand"),
                 next(p for p in props if p.kind == "width" and len(p.blocks) > 2)]
    elif arch is V3_SMALL:
        props = [next(p for p in props if p.kind == "expand" and arch.blocks[p.blocks[0]].se),
                 next(p for p in props if p.kind == "width" and len(p.blocks) > 2),
                 next(p for p in props if p.kind == "width" and -1 in p.blocks)]
        assert len(props) == 3
    for p in props:
        assert_exact(arch, p.arch)


def test_se_squeeze_width_change_keeps_strongest_squeeze_channels():
    # V3_SMALL block 4 has SE over 240 channels (squeeze 64); at 200 the squeeze is 48
    assert_exact(V3_SMALL, with_expand(V3_SMALL, 4, 200))


def test_stem_group_and_tied_depthwise_and_everything_at_once():
    g0 = width_groups(V3_LARGE)[0]  # stem + block 0 (no expand conv, residual with the stem)
    assert_exact(V3_LARGE, with_group_width(V3_LARGE, g0, 8))
    # several nodes at once, last conv and head too: shrink is not limited to single proposals
    several = with_group_width(with_expand(V3_SMALL, 9, 320), width_groups(V3_SMALL)[3], 24)
    assert_exact(V3_SMALL, several.with_blocks(several.blocks, last_conv=288, head=512))


def test_strongest_channels_are_kept():
    new = with_expand(V3_SMALL, 4, 232)  # drop 8 of 240
    model = random_net(V3_SMALL)
    mods = dict(model.named_modules())
    project, fc1 = mods["features.5.block.3.0"], mods["features.5.block.2.fc1"]
    with torch.no_grad():
        project.weight[:, :8] *= 1e-3  # channels 0-7 barely read...
        fc1.weight[:, :8] *= 1e-3
        project.weight[:, 8] *= 1e3  # ...channel 8 read loudly
    kept = choose_channels(model, new)[("e", 4)]
    assert len(kept) == 232 and 8 in kept.tolist() and not set(range(8)) & set(kept.tolist())


def test_shrink_refuses_growth_and_structure_changes():
    model = random_net(V3_SMALL)
    with pytest.raises(ValueError, match="grow"):
        shrink(model, with_expand(V3_SMALL, 4, 256))
    with pytest.raises(ValueError, match="structure"):
        shrink(model, V3_LARGE)


def rescaled(model, block: int, channel: int, a: float):
    """``model`` with one expansion channel's depthwise BN (gamma, beta) times ``a`` and its reader (the
    project conv's input column) times ``1/a``: the same function, since ReLU(a y) = a ReLU(y)."""
    model = copy.deepcopy(model)
    p = module_paths(model.arch).blocks[block]
    mods = dict(model.named_modules())
    bn, project = mods[p.depthwise[1]], mods[p.project[0]]
    with torch.no_grad():
        bn.weight[channel] *= a
        bn.bias[channel] *= a
        project.weight[:, channel] /= a
    return model


@pytest.mark.parametrize("importance", ["bn_weight", "activation", "weight"])
def test_importance_survives_bn_rescaling_only_when_it_accounts_for_the_scale(importance):
    block, new = 1, with_expand(V3_SMALL, 1, 64)  # k3_e72_c24_s2_re: ReLU, no SE; drop 8 of 72
    assert V3_SMALL.blocks[block].act == "RE" and not V3_SMALL.blocks[block].se
    model = random_net(V3_SMALL)
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64)
    node = ("e", block)
    # the channel the plain weight norm ranks first: kept by every criterion that sees its reader alone
    c = int(channel_scores(model, "weight")[node].argmax())
    other = rescaled(model, block, c, 100.0)
    torch.testing.assert_close(other(x), model(x), rtol=1e-9, atol=1e-9)  # the same network
    inputs = torch.randn(16, 3, 16, 16, dtype=torch.float64)
    keep = choose_channels(model, new, channel_scores(model, importance, inputs))
    keep_other = choose_channels(other, new, channel_scores(other, importance, inputs))
    assert set(keep) == set(keep_other)
    if importance == "weight":  # the reader's norm fell 100x: the channel is dropped now
        assert c in keep[node].tolist() and c not in keep_other[node].tolist()
    else:
        assert all(torch.equal(keep[n], keep_other[n]) for n in keep), f"{importance} changed its choice"
        torch.testing.assert_close(channel_scores(other, importance, inputs)[node],
                                   channel_scores(model, importance, inputs)[node], rtol=1e-9, atol=0)


def test_activation_importance_needs_inputs_and_unknown_importance_is_refused():
    model = random_net(V3_SMALL)
    with pytest.raises(ValueError, match="needs a few training images"):
        channel_scores(model, "activation")
    with pytest.raises(ValueError, match="importance='l1' is unknown"):
        channel_scores(model, "l1")
