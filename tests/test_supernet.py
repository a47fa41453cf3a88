"""accuracy=supernet: the supernet computes what the extracted networks compute, reaches every choice,
learns from a sandwich step, resumes after SIGKILL to the same weights, refuses changed settings, and
trains under torchrun on 2 gloo processes. Tiny data (32 px, a few images), a few steps."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from core.cli import run
from space import SearchSpace, build_model, format_arch
from space.searchspace import FIELDS
from train import load_data
from train.supernet.estimator import SupernetEstimator, export_trial
from train.supernet.net import Supernet, every_choice
from train.supernet.shrinking import restrict, stage
from train.supernet.train import CHECKPOINT, CHECKPOINT_LINE, SupernetConfig, sandwich_step, step_archs

# A small space that varies every field, output widths and strides included, with a block that may
# skip its expansion conv (expand == input) and a last conv following the 6x rule.
TINY = {"name": "tiny", "stem": 8, "last_conv": "6x", "head": 32, "dropout": 0.2, "blocks": [
    {"kernel": [3, 5, 7], "expand": [8, 16, 24], "out": [8, 16], "se": [False, True], "act": ["RE", "HS"],
     "stride": [1, 2]},
    {"kernel": [3, 5], "expand": [24, 32], "out": [16, 24], "se": [False, True], "act": ["RE", "HS"],
     "stride": [1, 2]},
]}
DATA = {"name": "synthetic", "input_size": 32, "n_train": 32, "n_holdout": 16, "n_test": 16, "num_classes": 4}
CLI = ["+space=v3_small", "data=synthetic", "data.n_train=32", "data.n_holdout=16", "data.n_test=16",
       "accuracy.batch_size=16", "accuracy.steps=3", "accuracy.checkpoint_every=1", "accuracy.sort_every=2",
       "accuracy.bn_recal_batches=1", "progress=false"]


def _env() -> dict:
    return dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _scrambled(net: Supernet) -> Supernet:
    """Random BN statistics and affine parameters (and kernel transforms, if any), so a wrong slice cannot
    hide behind BN's or the transform's identity init."""
    g = torch.Generator().manual_seed(1)
    for blk in net.blocks:
        for m in (blk.kernel_maps or {}).values():
            m.data.add_(0.3 * torch.randn(m.shape, generator=g))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return net.eval()


def _points(space: SearchSpace, net: Supernet, n: int = 4):
    return [net.largest(), net.smallest(), *(space.sample(s) for s in range(n))]


@pytest.mark.parametrize("which,transform", [("v3_small", False), ("tiny", False), ("tiny", True)])
def test_extracted_subnet_computes_what_the_supernet_computes(which, transform):
    space = SearchSpace.load(which) if which != "tiny" else SearchSpace.from_config(TINY)
    torch.manual_seed(0)
    net = _scrambled(Supernet(space, 4, kernel_transform=transform))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for arch in _points(space, net):
            model = net.extract(arch).eval()
            assert torch.allclose(net(x, arch), model(x), atol=1e-5), format_arch(arch)
            plain = build_model(arch, num_classes=4).eval()  # the exported state dict, loaded by build_model
            plain.load_state_dict(net.state_dict_of(arch))
            assert torch.equal(plain(x), model(x))


@pytest.mark.parametrize("transform", [False, True])
def test_every_choice_of_every_block_is_reachable_and_matters(transform):
    space = SearchSpace.from_config(TINY)
    torch.manual_seed(0)
    net = _scrambled(Supernet(space, 4, kernel_transform=transform))
    x = torch.randn(2, 3, 32, 32)
    base = net.largest()
    with torch.no_grad():
        for i, field, value in every_choice(space):
            blocks = list(base.blocks)
            outs = {}
            for v in getattr(space.blocks[i], field):
                blocks[i] = type(base.blocks[i])(**{**base.blocks[i].__dict__, field: v})
                arch = space._arch(blocks)
                assert space.contains(arch)
                outs[v] = net(x, arch)
                assert torch.allclose(outs[v], net.extract(arch).eval()(x), atol=1e-5), (i, field, v)
            others = [o for v, o in outs.items() if v != value]
            assert all(not torch.allclose(outs[value], o) for o in others), f"block {i} {field}={value} changes nothing"


def test_a_sandwich_step_updates_the_shared_weights_and_sorting_keeps_the_largest():
    space = SearchSpace.load("v3_small")
    data = load_data(DATA)
    cfg = SupernetConfig(batch_size=16, n_random=1)
    torch.manual_seed(0)
    net = Supernet(space, data.num_classes).train()
    from train.loop import param_groups

    opt = torch.optim.SGD(param_groups(net, cfg.weight_decay), lr=0.1, momentum=0.9)
    x = torch.stack([data.train[i][0] for i in range(16)])
    y = torch.tensor([data.train[i][1] for i in range(16)])
    small = net.smallest().blocks[4]
    before = net.blocks[4].depthwise_weight(small.expand, small.kernel).clone()
    losses = sandwich_step(net, net, x, y, step_archs(net, 0, cfg), opt, cfg)
    assert len(losses) == 3 and all(v > 0 for v in losses.tolist())  # on the device, unread
    # The slice every point shares (smallest kernel, narrowest expansion) moved.
    assert not torch.equal(before, net.blocks[4].depthwise_weight(small.expand, small.kernel))
    net.eval()
    largest = net.largest()
    y0 = net(x, largest)
    momentum = opt.state[net.blocks[4].project.weight]["momentum_buffer"].clone()
    net.sort_channels(opt)
    assert torch.allclose(net(x, largest), y0, atol=1e-5)  # a permutation of hidden channels
    norms = net.blocks[4].project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(norms[:-1] >= norms[1:])
    assert not torch.equal(momentum, opt.state[net.blocks[4].project.weight]["momentum_buffer"])
    assert not net.sortable(0)  # v3_small's first block may skip its expansion conv: left in place


def test_the_kernel_transform_maps_the_centre_learns_and_is_bound_only_when_used():
    space = SearchSpace.from_config(TINY)
    torch.manual_seed(0)
    plain, mapped = Supernet(space, 4), Supernet(space, 4, kernel_transform=True)
    mapped.load_state_dict(plain.state_dict(), strict=False)
    blk, ref = mapped.blocks[0], plain.blocks[0]
    assert sorted(blk.kernel_maps) == ["3", "5"] and ref.kernel_maps is None
    # Identity maps at the start: the centre, as without the transform.
    assert torch.equal(blk.depthwise_weight(8, 3), ref.depthwise_weight(8, 3))
    # 7 -> 5 -> 3: kernel 3 is the centre of the mapped 5x5, mapped again.
    with torch.no_grad():
        blk.kernel_maps["5"].copy_(torch.randn(25, 25))
        blk.kernel_maps["3"].copy_(torch.randn(9, 9))
    w5 = blk.depthwise.weight[:8, :, 1:6, 1:6].reshape(8, 25) @ blk.kernel_maps["5"].T
    w3 = w5.reshape(8, 1, 5, 5)[:, :, 1:4, 1:4].reshape(8, 9) @ blk.kernel_maps["3"].T
    assert torch.allclose(blk.depthwise_weight(8, 5), w5.reshape(8, 1, 5, 5))
    assert torch.allclose(blk.depthwise_weight(8, 3), w3.reshape(8, 1, 3, 3))
    assert torch.equal(blk.depthwise_weight(8, 7), blk.depthwise.weight[:8])
    # A sandwich step trains the maps the step's points use (the smallest point has kernel 3 everywhere).
    data = load_data(DATA)
    cfg = SupernetConfig(batch_size=16, n_random=0, kernel_transform=True)
    net = Supernet(space, data.num_classes, kernel_transform=True).train()
    from train.loop import param_groups

    opt = torch.optim.SGD(param_groups(net, cfg.weight_decay), lr=0.1)
    x = torch.stack([data.train[i][0] for i in range(16)])
    y = torch.tensor([data.train[i][1] for i in range(16)])
    sandwich_step(net, net, x, y, step_archs(net, 0, cfg), opt, cfg)
    assert not torch.equal(net.blocks[1].kernel_maps["3"], torch.eye(9))
    # Bound to the checkpoint only when on, so supernets trained before the option resume unchanged.
    assert "kernel_transform" not in SupernetConfig().bound()
    assert SupernetConfig(kernel_transform=True).bound()["kernel_transform"] is True


def test_progressive_shrinking_opens_the_choices_stage_by_stage_and_is_bound_only_when_used():
    space = SearchSpace.from_config(TINY)
    net = Supernet(space, 4)
    big = net.largest()
    cfg = SupernetConfig(steps=8, n_random=3, progressive_shrinking=True)
    assert [stage(s, 8) for s in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3] and stage(9, 10) == 3
    assert step_archs(net, 1, cfg) == [big]  # stage 0: the largest point alone, no distillation
    varied = {}
    for s in range(2, 8):
        for arch in step_archs(net, s, cfg)[1:]:
            for b, bb in zip(arch.blocks, big.blocks):
                varied.setdefault(stage(s, 8), set()).update(f for f in FIELDS if getattr(b, f) != getattr(bb, f))
    assert varied == {1: {"kernel"}, 2: {"kernel", "expand"}, 3: set(FIELDS)}
    plain = SupernetConfig(steps=8, n_random=3)
    assert step_archs(net, 1, plain)[1:] == [restrict(a, big, FIELDS, space) for a in step_archs(net, 1, plain)[1:]]
    assert step_archs(net, 7, cfg) == step_archs(net, 7, plain)  # the last stage is the plain sandwich
    small = restrict(net.smallest(), big, ("kernel",), space)
    assert [b.kernel for b in small.blocks] == [3, 3] and [b.expand for b in small.blocks] == [24, 32]
    assert "progressive_shrinking" not in plain.bound() and cfg.bound()["progressive_shrinking"] is True


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A supernet trained 2 steps on 32 synthetic images, its estimator, and a study folder scored with it."""
    root = tmp_path_factory.mktemp("sn")
    space = SearchSpace.load("v3_small")
    cfg = SupernetConfig(run_name="t", steps=2, batch_size=16, checkpoint_every=1, bn_recal_batches=1)
    est = SupernetEstimator(load_data(DATA), cfg, space=space, results_dir=root, data_cfg=DATA, progress=False,
                            log=lambda s: None)
    est.prepare()
    study = root / "search" / "v3_small" / "s"
    study.mkdir(parents=True)
    (study / "protocol.json").write_text(json.dumps(est.protocol()))
    arch = space.sample(3)
    acc = est(arch, "trial 0")
    with open(study / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["number", "state", "arch", "top1"])
        w.writeheader()
        w.writerow({"number": 0, "state": "COMPLETE", "arch": format_arch(arch), "top1": acc.top1})
    return root, est, study, arch, acc


def test_scoring_and_export(trained):
    root, est, study, arch, acc = trained
    assert est.protocol()["estimator"] == "supernet" and 0 <= acc.top1 <= 1 and acc.test_top1 is not None
    again = est(arch)
    assert (again.top1, again.loss) == (acc.top1, acc.loss)  # same point, same weights, same score
    out, got = export_trial(study, 0)
    assert got == arch and out == study / "weights" / "trial-0.pt"
    model = build_model(arch, num_classes=4)
    model.load_state_dict(torch.load(out, weights_only=True))
    from train.loop import evaluate

    top1, _ = evaluate(model, est.data.holdout, device=torch.device("cpu"))
    assert round(top1, 6) == acc.top1  # the exported network is the one the trial was scored with
    from netadapt.start import exported_weights

    assert exported_weights(f"{study}:0") == out and exported_weights(f"{study}:1") is None
    # NetAdapt's start=<study>:<trial> starts from them.
    from core.cli import compose
    from core.settings import plain
    from netadapt.loop import NetAdapt

    cfg = plain(compose("netadapt", [f"start={study}:0", *[f"data.{k}={v}" for k, v in DATA.items()],
                                     "data=synthetic", "latency=measured", "latency.input_size=32",
                                     "latency.warmup=1", "latency.repeats=3", f"results_dir={root}"]))
    na = NetAdapt.from_config(cfg, progress=False, log=lambda s: None)
    assert na.weights == str(out)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in na.start_model.state_dict().items())


def test_finetuned_scoring_is_seeded_leaves_the_supernet_and_is_what_export_writes(trained, tmp_path):
    root, est, _, arch, _ = trained
    cfg = SupernetConfig(run_name="t", steps=2, batch_size=16, checkpoint_every=1, bn_recal_batches=1,
                         finetune_steps=2, finetune_lr=0.05)
    ft = SupernetEstimator(est.data, cfg, space=est.space, results_dir=root, data_cfg=DATA, progress=False,
                           log=lambda s: None)  # same checkpoint: scoring settings are not bound to it
    shared = {k: v.clone() for k, v in est.net.state_dict().items()}
    plain_weights = est.model(arch).state_dict()
    tuned = ft.model(arch).state_dict()
    assert any(not torch.equal(tuned[k], plain_weights[k]) for k in plain_weights if "running" not in k)
    assert all(torch.equal(v, ft.net.state_dict()[k]) for k, v in shared.items())  # finetuning copies
    again = ft.model(arch).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in tuned.items())  # seeded
    assert ft.protocol()["budget"]["finetune_steps"] == 2 and "finetune_steps" not in est.protocol()["budget"]
    acc = ft(arch)
    study = root / "search" / "v3_small" / "ft"
    study.mkdir(parents=True)
    (study / "protocol.json").write_text(json.dumps(ft.protocol()))
    (study / "trials.csv").write_text(f"number,state,arch\n0,COMPLETE,{format_arch(arch)}\n")
    out, _ = export_trial(study, 0, tmp_path / "w.pt")
    model = build_model(arch, num_classes=4)
    model.load_state_dict(torch.load(out, weights_only=True))
    from train.loop import evaluate

    assert round(evaluate(model, est.data.holdout, device=torch.device("cpu"))[0], 6) == acc.top1


def _main(argv):
    from search.supernet import main

    return main(argv)


def test_kill_resume_gives_the_weights_of_an_uninterrupted_run_and_changed_settings_exit_2(tmp_path, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # Every training in a process of its own with the same thread count: float sums depend on it.
    command = [sys.executable, "-m", "search.supernet", *CLI]
    done = subprocess.run([*command, f"results_dir={whole}"], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Killed right after its first checkpoint lands (an event in its output, not a clock), then rerun.
    p = subprocess.Popen([*command, f"results_dir={killed}"], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if line.startswith(CHECKPOINT_LINE):
            p.send_signal(signal.SIGKILL)
            break
    p.wait()
    assert p.returncode == -signal.SIGKILL
    folder = killed / "supernet" / "v3_small" / "synthetic"
    first = torch.load(folder / CHECKPOINT, weights_only=True)
    assert not first["done"] and first["cpu_seconds"] > 0
    resumed = subprocess.run([*command, f"results_dir={killed}"], cwd=REPO, env=_env(), capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a = torch.load(whole / "supernet" / "v3_small" / "synthetic" / CHECKPOINT, weights_only=True)
    b = torch.load(folder / CHECKPOINT, weights_only=True)
    assert a["done"] and b["done"] and a["model"].keys() == b["model"].keys()
    assert b["cpu_seconds"] > first["cpu_seconds"] and a["cpu_seconds"] > 0  # CPU seconds add up across the resume
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # The same folder with other settings: one line naming the key, exit 2.
    with pytest.raises(SystemExit) as e:
        run(_main, [*CLI, "accuracy.lr=0.01", f"results_dir={killed}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "with accuracy.lr=0.05, not accuracy.lr=0.01" in err[0], err
    with pytest.raises(SystemExit) as e:
        run(_main, [*CLI, "accuracy.kernel_transform=true", f"results_dir={killed}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert "trained without accuracy.kernel_transform, not accuracy.kernel_transform=true" in err[0], err


def test_two_gloo_processes_train_end_to_end(tmp_path):
    """The multi-GPU command as a user types it (torchrun, here 2 gloo processes on the CPU). Not forked from
    the test process: a fork of a process whose thread pools are running can deadlock."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "search.supernet", *CLI, "accuracy.steps=2", "accuracy.checkpoint_every=2", "train.device=cpu",
           f"results_dir={tmp_path}"]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = torch.load(tmp_path / "supernet" / "v3_small" / "synthetic" / CHECKPOINT, weights_only=True)
    assert state["done"] and state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    torch.manual_seed(0)  # the seeded initialisation: the averaged gradients moved the weights from it
    init = Supernet(SearchSpace.load("v3_small"), 4).state_dict()
    assert not torch.equal(init["stem.weight"], state["model"]["stem.weight"])
    assert r.stdout.count("trained (2 steps)") == 1  # rank 0 reports


def test_a_second_worker_waits_for_the_one_training_then_loads_its_supernet(tmp_path):
    import fcntl
    import threading

    from train.supernet.train import LOCK

    space = SearchSpace.load("v3_small")
    cfg = SupernetConfig(run_name="w", steps=1, batch_size=16, checkpoint_every=1, bn_recal_batches=1)
    folder = tmp_path / "supernet" / "v3_small" / "w"
    folder.mkdir(parents=True)
    waiting = threading.Event()
    est = SupernetEstimator(load_data(DATA), cfg, space=space, results_dir=tmp_path, data_cfg=DATA, progress=False,
                            log=lambda s: waiting.set() if s.startswith("waiting") else None)
    with open(folder / LOCK, "a+") as held:  # "another worker" holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=est.prepare)
        worker.start()
        assert waiting.wait(timeout=120)
        assert not (folder / CHECKPOINT).exists() and worker.is_alive()
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=120)
    assert est.net is not None and torch.load(folder / CHECKPOINT, weights_only=True)["done"]
