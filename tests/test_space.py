"""space/: the data model, the exact references, the text forms and the search spaces."""
from __future__ import annotations

import math

import optuna
import pytest
import torch

import space
from space import ArchError, ArchSpec, BlockSpec, SearchSpace

REFS = {"mobilenet_v3_large": space.V3_LARGE, "mobilenet_v3_small": space.V3_SMALL}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- references ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,expected", [(space.V3_LARGE, 5_483_032), (space.V3_SMALL, 2_542_856)])
def test_reference_parameter_counts(arch, expected):
    assert n_params(space.build_model(arch)) == expected


@pytest.mark.parametrize("name", sorted(REFS))
def test_reference_state_dict_matches_torchvision(name, torchvision_shapes):
    got = [[k, list(v.shape)] for k, v in space.build_model(REFS[name]).state_dict().items()]
    assert got == torchvision_shapes[name]


@pytest.mark.parametrize("name", sorted(REFS))
def test_a_state_dict_under_torchvisions_names_sets_every_weight(name, torchvision_shapes):
    """Tensors named and shaped as torchvision's (the fixture) load strictly into a build of another
    seed, and the network then computes with them: its output is the source network's."""
    torch.manual_seed(0)
    source = space.build_model(REFS[name]).eval()
    with torch.no_grad():  # BN statistics away from their init, so loading them matters too
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    sd = source.state_dict()
    assert [[k, list(v.shape)] for k, v in sd.items()] == torchvision_shapes[name]
    torch.manual_seed(1)
    target = space.build_model(REFS[name]).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(target(x), source(x))
        target.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=True)
        assert torch.equal(target(x), source(x))


def test_batchnorm_and_se_follow_torchvision():
    m = space.build_model(space.V3_LARGE)
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(bn.eps == 0.001 and bn.momentum == 0.01 for bn in bns)
    se = m.features[4].block[2]  # k5_e72_c40 SE block: squeeze = make_divisible(72 // 4, 8) = 24
    assert se.fc1.out_channels == 24 and isinstance(se.scale_activation, torch.nn.Hardsigmoid)
    assert m.classifier[0].in_features == 960 and m.classifier[0].out_features == 1280
    assert isinstance(m.classifier[2], torch.nn.Dropout) and m.classifier[2].p == 0.2


def test_make_divisible_matches_torchvision_rule():
    assert [space.make_divisible(v) for v in (3, 12, 18, 30, 36, 100, 1000 * 0.75)] == [8, 16, 24, 32, 40, 104, 752]
    assert space.make_divisible(9.5, 8) == 16  # never 10% below: 8 < 0.9 * 9.5


@pytest.mark.parametrize("mult,expected", [(0.75, 3_377_576), (0.5, 1_734_576)])
def test_scale_width(mult, expected):
    arch = space.scale_width(space.V3_LARGE, mult)
    assert arch.blocks[0].expand == arch.stem  # block 0 stays without an expansion conv
    assert arch.last_conv == 6 * arch.blocks[-1].out
    assert all(b.expand % 8 == 0 and b.out % 8 == 0 for b in arch.blocks)
    # recorded; the head is scaled too (torchvision: last_channel = adjust_channels(1280)), hence
    # fewer than timm's 0.75 variant, which keeps a 1280-wide head
    assert arch.head == space.make_divisible(1280 * mult)
    assert n_params(space.build_model(arch)) == expected
    assert space.scale_width(space.V3_LARGE, 1.0) == space.V3_LARGE
    with pytest.raises(ValueError, match="multiplier"):
        space.scale_width(space.V3_LARGE, 0)


# -- text forms ------------------------------------------------------------------------------
def test_reference_string_form_is_pinned():
    assert space.format_arch(space.V3_SMALL) == (
        "stem16 k3_e16_c16_s2_se_re k3_e72_c24_s2_re k3_e88_c24_re k5_e96_c40_s2_se_hs "
        "k5_e240_c40_se_hs k5_e240_c40_se_hs k5_e120_c48_se_hs k5_e144_c48_se_hs "
        "k5_e288_c96_s2_se_hs k5_e576_c96_se_hs k5_e576_c96_se_hs last576 head1024 drop0.2"
    )


def _random_points(n=10):
    for name in ("v3_large", "v3_small"):
        sp = space.load_space(name)
        for seed in range(n):
            yield sp.sample(seed)


@pytest.mark.parametrize("arch", [space.V3_LARGE, space.V3_SMALL, *_random_points()])
def test_string_and_json_round_trip(arch, tmp_path):
    assert space.parse_arch(space.format_arch(arch)) == arch
    assert space.parse_arch(space.to_json(arch)) == arch
    path = tmp_path / "arch.json"
    path.write_text(space.to_json(arch))
    assert space.parse_arch(str(path)) == arch
    assert hash(space.parse_arch(space.format_arch(arch))) == hash(arch)


def test_parse_reference_names():
    assert space.parse_arch("v3_large") is space.V3_LARGE


@pytest.mark.parametrize("text,message", [
    ("stem16 k4_e16_c16_re last960 head1280", "kernel must be an odd integer >= 3"),
    ("stem16 k3_e0_c16_re last960 head1280", "expand must be a positive integer"),
    ("stem16 k3_e16_c16_s3_re last960 head1280", "stride must be 1 or 2"),
    ("stem16 k3_e16_c16_xx last960 head1280", "cannot read token 'k3_e16_c16_xx'"),
    ("stem16 k3_e16_c16_re head1280", "lacks last_conv"),
    ("v3_medium", "unknown architecture 'v3_medium'"),
    ("{\"stem\": 16,", "malformed architecture JSON"),
    ("{\"stem\": 16, \"blocks\": [], \"last_conv\": 8, \"head\": 8}", "at least one block"),
    ("{\"stem\": 16, \"blocks\": [{\"kernel\": 3, \"expand\": 16, \"out\": 8, \"se\": false, \"act\": \"RE\", \"stride\": 1, \"x\": 1}], \"last_conv\": 8, \"head\": 8}", "unknown keys ['x']"),  # noqa: E501
    ("missing_file.json", "does not exist"),
])
def test_parse_rejects_bad_input(text, message):
    with pytest.raises(ArchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        space.parse_arch(text)


B = BlockSpec


@pytest.mark.parametrize("kwargs,message", [
    (dict(stem=0), "stem: channels must be a positive integer"),
    (dict(blocks=(B(4, 16, 16),)), "block 0: kernel must be an odd integer >= 3, got 4"),
    (dict(blocks=(B(1, 16, 16),)), "block 0: kernel must be an odd integer >= 3, got 1"),
    (dict(blocks=(B(3, 16, 16), B(3, 0, 24))), "block 1: expand must be a positive integer, got 0"),
    (dict(blocks=(B(3, 16, -8),)), "block 0: out must be a positive integer, got -8"),
    (dict(blocks=(B(3, 16, 16, stride=3),)), "block 0: stride must be 1 or 2, got 3"),
    (dict(blocks=(B(3, 16, 16, act="GELU"),)), "block 0: act must be one of RE, HS, got 'GELU'"),
    (dict(blocks=(B(3, 16, 16, se="yes"),)), "block 0: se must be true or false"),
    (dict(blocks=(B(3, 32, 64),)), r"block 0: expand \(32\) must be >= out \(64\) when the block expands"),
    (dict(blocks=()), "at least one block"),
    (dict(last_conv=0), "last_conv: channels must be a positive integer"),
    (dict(head=-1), "head: channels must be a positive integer"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
])
def test_validation_names_block_and_field(kwargs, message):
    base = dict(stem=16, blocks=(B(3, 16, 16),), last_conv=96, head=128)
    with pytest.raises(ArchError, match=message):
        ArchSpec(**{**base, **kwargs})


def test_arch_error_is_a_value_error():
    assert issubclass(ArchError, ValueError)


# -- models of random points -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["v3_large", "v3_small"])
def test_forward_random_points(name):
    sp = space.load_space(name)
    torch.manual_seed(0)
    for seed in range(3):
        arch = sp.sample(seed)
        model = space.build_model(arch, num_classes=10).eval()
        with torch.inference_mode():
            y = model(torch.randn(2, 3, 64, 64))
        assert y.shape == (2, 10) and torch.isfinite(y).all()
        # module tree mirrors torchvision: every block is features.<i>.block.<j>
        assert len(model.features) == len(arch.blocks) + 2


def test_expansion_conv_and_residual_follow_the_spec():
    m = space.build_model(space.V3_LARGE)
    assert len(m.features[1].block) == 2  # 16 -> 16: depthwise + project only
    assert len(m.features[2].block) == 3  # expand + depthwise + project
    assert m.features[1].use_res_connect and not m.features[2].use_res_connect and m.features[3].use_res_connect


# -- the skeleton: module paths, feature-map sizes, the 6x rule -------------------------------
SKELETON_ARCHS = [space.V3_LARGE, space.V3_SMALL, space.scale_width(space.V3_SMALL, 0.5),
                  space.load_space("v3_large").sample(1), space.load_space("v3_small").sample(2)]


@pytest.mark.parametrize("arch", SKELETON_ARCHS, ids=range(len(SKELETON_ARCHS)))
def test_module_paths_name_every_weighted_layer_of_the_built_network(arch):
    from torch import nn

    from space.skeleton import module_paths

    model = space.build_model(arch, num_classes=10)
    mods = dict(model.named_modules())
    paths = module_paths(arch)
    named: list[str] = []

    def conv(path, cin, cout, kernel=1, groups=1, stride=1):
        m = mods[path]
        assert isinstance(m, nn.Conv2d), path
        assert (m.in_channels, m.out_channels, m.kernel_size, m.groups, m.stride) == \
            (cin, cout, (kernel, kernel), groups, (stride, stride)), path
        named.append(path)

    def conv_bn(pair, cin, cout, **kw):
        conv(pair[0], cin, cout, **kw)
        assert isinstance(mods[pair[1]], nn.BatchNorm2d) and mods[pair[1]].num_features == cout, pair[1]
        named.append(pair[1])

    conv_bn(paths.stem, 3, arch.stem, kernel=3, stride=2)
    for cin, b, p in zip(arch.in_channels(), arch.blocks, paths.blocks):
        assert (p.expand is not None) == b.has_expand(cin) and (p.se is not None) == b.se
        if p.expand:
            conv_bn(p.expand, cin, b.expand)
        conv_bn(p.depthwise, b.expand, b.expand, kernel=b.kernel, groups=b.expand, stride=b.stride)
        if p.se:
            conv(p.se[0], b.expand, space.se_width(b.expand))
            conv(p.se[1], space.se_width(b.expand), b.expand)
        conv_bn(p.project, b.expand, b.out)
    conv_bn(paths.last_conv, arch.blocks[-1].out, arch.last_conv)
    for path, shape in ((paths.hidden, (arch.head, arch.last_conv)), (paths.logits, (10, arch.head))):
        assert isinstance(mods[path], nn.Linear) and tuple(mods[path].weight.shape) == shape
        named.append(path)
    # nothing with weights is left out: shrinking by these paths covers the whole state dict
    weighted = {n for n, m in mods.items() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))}
    assert sorted(named) == sorted(weighted)


@pytest.mark.parametrize("size", [224, 33, 65])
def test_feature_sizes_are_the_built_networks_feature_maps(size):
    from space.skeleton import feature_sizes

    for arch in SKELETON_ARCHS[1:]:
        model = space.build_model(arch).eval()
        seen: list[int] = []
        # the input of each block, then of the last conv (= the last block's output)
        for layer in list(model.features)[1:]:
            layer.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0].shape[-1]))
        with torch.inference_mode():
            model(torch.zeros(1, 3, size, size))
        assert feature_sizes(arch, size) == seen


def test_the_6x_rule_is_one_function_used_by_spaces_and_multipliers():
    from space.skeleton import follows_6x, last_conv_width

    assert last_conv_width("6x", 40) == 240 and last_conv_width(1024, 40) == 1024
    assert follows_6x(space.V3_LARGE) and follows_6x(space.V3_SMALL)
    assert not follows_6x(space.V3_LARGE.with_blocks(space.V3_LARGE.blocks, last_conv=1000))
    half = space.scale_width(space.V3_SMALL, 0.5)
    assert half.last_conv == last_conv_width("6x", half.blocks[-1].out) == 288
    kept = space.scale_width(space.V3_LARGE.with_blocks(space.V3_LARGE.blocks, last_conv=1000), 0.5)
    assert kept.last_conv == space.make_divisible(500) and not follows_6x(kept)


# -- search spaces ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,ref", [("v3_large", space.V3_LARGE), ("v3_small", space.V3_SMALL)])
def test_space_contains_its_reference(name, ref):
    sp = space.load_space(name)
    assert sp.reference == ref and sp.contains(ref)
    other = "v3_small" if name == "v3_large" else "v3_large"
    assert not sp.contains(space.REFERENCES[other])


def test_space_sizes_are_exact():
    large = space.load_space("v3_large")
    # block 0: 2 kernels x 3 expansions x 2 SE x 2 act; the other 14 blocks: 2 x 4 x 2 x 2
    assert large.size == 24 * 32**14
    small = space.load_space("v3_small")
    assert small.size == 24 * 32**10
    assert len(small) == small.size


def test_spaces_reach_smaller_and_larger_networks_than_the_reference():
    for name in ("v3_large", "v3_small"):
        sp = space.load_space(name)
        ref = n_params(space.build_model(sp.reference))
        sizes = []
        for b in sp.blocks:
            assert b.expand[0] < max(b.expand)
        small = sp._arch([B(min(c.kernel), min(c.expand), c.out[0], False, "RE", c.stride[0]) for c in sp.blocks])
        large = sp._arch([B(max(c.kernel), max(c.expand), c.out[0], True, "HS", c.stride[0]) for c in sp.blocks])
        sizes = [n_params(space.build_model(a)) for a in (small, large)]
        assert sizes[0] < ref < sizes[1]


def _study(seed):
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=3))
    sp = space.load_space("v3_small")
    archs = []

    def objective(trial):
        arch = sp.suggest(trial)
        archs.append(arch)
        return sum(b.expand for b in arch.blocks)

    study.optimize(objective, n_trials=6)
    return archs


def test_suggest_is_reproducible_under_a_seeded_sampler():
    assert _study(3) == _study(3)
    assert _study(3) != _study(4)


def test_suggest_parameter_names_and_params_of_inverse():
    sp = space.load_space("v3_large")
    params = sp.params_of(sp.reference)
    assert params["b00.kernel"] == 3 and params["b03.se"] is True and params["b06.act"] == "HS"
    assert "b00.out" not in params and "b06.stride" not in params  # fixed fields are not parameters
    study = optuna.create_study()
    study.enqueue_trial(params)
    trial = study.ask()
    assert sp.suggest(trial) == sp.reference
    assert len(params) == 15 * 4
    with pytest.raises(ArchError, match="not a point"):
        sp.params_of(space.V3_SMALL)


def test_reachable_blocks_cover_every_sampled_block():
    sp = space.load_space("v3_small")
    reach = {(i, cin, s, b) for i, cin, s, b in sp.reachable_blocks()}
    assert len(reach) == sum(bc.size() for bc in sp.blocks)
    arch = sp.sample(7)
    stride = 2
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        assert (i, cin, stride, b) in reach
        stride *= b.stride


@pytest.mark.parametrize("yaml_text,message", [
    ("stem: 16\nlast_conv: 64\nhead: 64\nblocks:\n  - {kernel: [3, 4], expand: 16, out: 16}\n", "block 0: kernel must be an odd"),  # noqa: E501
    ("stem: 16\nlast_conv: 64\nhead: 64\nblocks:\n  - {kernel: 3, expand: [32, 8], out: 24}\n", r"block 0: expand \(8\) must be >= out"),  # noqa: E501
    ("stem: 16\nlast_conv: 64\nhead: 64\nblocks:\n  - {kernel: 3, expand: 16, out: 16, colour: red}\n", "unknown keys"),
    ("stem: 16\nlast_conv: 64\nhead: 64\nblocks:\n  - {kernel: [3, 3], expand: 16, out: 16}\n", "lists a choice twice"),
    ("stem: 16\nhead: 64\nblocks:\n  - {kernel: 3, expand: 16, out: 16}\n", "missing key 'last_conv'"),
    ("stem: 16\nlast_conv: 64\nhead: 64\nreference: v3_large\nblocks:\n  - {kernel: 3, expand: 16, out: 16}\n", "is not a point of it"),  # noqa: E501
    ("- just a list\n", "is not a space YAML"),
])
def test_bad_space_yaml(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ArchError, match=message):
        SearchSpace.load(path)


def test_unknown_space_lists_the_known_ones():
    with pytest.raises(ArchError, match="unknown space 'v9'.*v3_large, v3_small"):
        space.load_space("v9")


def test_custom_space_with_open_widths_and_6x_last_conv(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("stem: 8\nlast_conv: 6x\nhead: 32\nblocks:\n"
                    "  - {kernel: 3, expand: [8, 16], out: [8, 16], stride: 2}\n"
                    "  - {kernel: [3, 5], expand: 48, out: 16}\n")
    sp = SearchSpace.load(path)
    assert sp.size == 2 * 2 * 2
    archs = {sp.sample(s) for s in range(40)}
    assert len(archs) == 8 and all(a.last_conv == 96 for a in archs)
    assert math.isclose(sum(1 for _ in sp.reachable_blocks()), 4 + 2 * 2)


# -- measure.show ------------------------------------------------------------------------------
def test_show_prints_table_and_params(cli):
    res = cli("measure.show", "v3_small")
    assert res.returncode == 0, res.stderr
    assert "params: 2,542,856" in res.stdout and "MACs: 56,510,400 at 224x224" in res.stdout
    assert len([ln for ln in res.stdout.splitlines() if ln.strip().startswith(("0 ", "10 "))]) >= 2


def test_show_bad_input_exits_2(cli):
    res = cli("measure.show", "stem16 k4_e16_c16_re last96 head128")
    assert res.returncode == 2 and "kernel must be an odd integer" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
