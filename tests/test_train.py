"""The accuracy proxy: datasets load (or fail with a DataError), fit is seeded, learns, and stops on NaN."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from train import DataError, DataSplit, DivergedError, FitResult, TrainConfig, fit, load_data, resolve_device, top1
from train.loop import lr_factor, total_steps

SYNTH = {"name": "synthetic", "input_size": 16, "seed": 0, "num_classes": 4, "n_train": 128, "n_holdout": 64}


def tiny_net(num_classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(16, num_classes))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy 2-core box two OpenMP threads
    # spin-wait each other into 5-10x slower steps. Restored so other test modules are unaffected.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synth() -> DataSplit:
    return load_data(SYNTH)


def quick(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "lr": 0.05, "device": "cpu", **kw})


def state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- fit -----------------------------------------------------------------------------------------

def test_same_seed_same_weights_different_seed_differs(synth):
    a, b, c = tiny_net(), tiny_net(), tiny_net()
    ra, rb = fit(a, synth, quick(seed=3)), fit(b, synth, quick(seed=3))
    rc = fit(c, synth, quick(seed=4))
    assert ra.top1 == rb.top1 and ra.loss == rb.loss
    sa, sb, sc = state(a), state(b), state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert rc.steps == ra.steps


def test_batch_order_does_not_depend_on_num_workers(synth):
    a, b = tiny_net(), tiny_net()
    fit(a, synth, quick(steps=2, num_workers=1, bn_recal_batches=1))
    fit(b, synth, quick(steps=2, bn_recal_batches=1), progress=True, desc="tqdm smoke")
    sa, sb = state(a), state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_model_learns_synthetic_above_chance(synth):
    model = tiny_net()
    before = top1(model, synth.holdout, device="cpu")
    res = fit(model, synth, quick(epochs=8, lr=0.1))
    assert isinstance(res, FitResult) and res.steps == 8 * 128 // 32  # every epoch, every full batch
    # 4 well-separated classes, seeded run (1.0 here): clearly above chance (0.25), and learned, not
    # a lucky initialisation (the untrained net scores 0.27)
    assert res.top1 >= 0.9 and res.top1 - before >= 0.5, (before, res)
    assert math.isfinite(res.loss) and math.isfinite(res.train_loss) and res.seconds > 0
    # fit leaves the model on the CPU in eval mode, and top1 agrees with fit's own evaluation
    assert next(model.parameters()).device.type == "cpu" and not model.training
    assert top1(model, synth.holdout, batch_size=7, device="cpu") == pytest.approx(res.top1)


def test_steps_overrides_epochs(synth):
    res = fit(tiny_net(), synth, quick(epochs=100, steps=5))
    assert res.steps == 5
    # 128 samples / 32 per batch = 4 steps per epoch; fractional epochs round up
    assert fit(tiny_net(), synth, quick(epochs=0.5)).steps == 2
    assert total_steps(100, TrainConfig(epochs=1, batch_size=32)) == 3  # ragged last batch dropped
    assert fit(tiny_net(), synth, quick(steps=0)).steps == 0  # evaluate only


def test_nan_loss_raises_diverged(synth):
    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(x.mean((2, 3))) * float("nan")

    with pytest.raises(DivergedError, match=r"step 1/"):
        fit(NaNNet(), synth, quick())
    model = tiny_net()
    with pytest.raises(DivergedError, match=r"loss became (nan|inf)"):
        fit(model, synth, quick(lr=1e30, epochs=5, weight_decay=0.0))
    assert next(model.parameters()).device.type == "cpu"


def test_bn_recalibration_uses_training_statistics(synth):
    model = tiny_net()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.001  # like torchvision's 0.01: running stats barely move in a short run
    stale = tiny_net()
    stale.load_state_dict(model.state_dict())
    for m, n in zip(model.modules(), stale.modules()):
        if isinstance(m, nn.BatchNorm2d):
            n.momentum = m.momentum
    fit(model, synth, quick(steps=3))  # 128 / 32 = 4 batches <= 20: recalibrated on the whole train set
    fit(stale, synth, quick(steps=3, bn_recal_batches=0))
    x = torch.stack([synth.train[i][0] for i in range(len(synth.train))])
    with torch.no_grad():
        target = model[0](x).mean((0, 2, 3))
    assert torch.allclose(model[1].running_mean, target, atol=1e-4)
    assert not torch.allclose(stale[1].running_mean, target, atol=1e-2)
    assert model[1].momentum == 0.001 and not model.training  # momentum restored


def test_schedule_and_config():
    cfg = TrainConfig(schedule="cosine", warmup_steps=2)
    assert [lr_factor(s, 10, cfg) for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, cfg) == 1.0 and lr_factor(9, 10, cfg) < 0.05
    assert lr_factor(9, 10, TrainConfig(schedule="constant")) == 1.0
    c = TrainConfig.from_cfg({"lr": 0.2, "steps": 7, "unknown_key": 1})
    assert c.lr == 0.2 and c.steps == 7 and c.batch_size == 64
    from omegaconf import OmegaConf
    assert TrainConfig.from_cfg(OmegaConf.create({"epochs": 0.5, "steps": None})).epochs == 0.5
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    assert resolve_device("cpu").type == "cpu"


def test_auto_device_follows_cuda_and_a_missing_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^train.device=cuda:1 but this host has no CUDA device torch can use: pass train.device=cpu"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on one with two GPUs (nothing is run on them)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


# --- datasets ------------------------------------------------------------------------------------

def test_digits_shapes_and_stratified_split():
    from omegaconf import OmegaConf
    d = load_data(OmegaConf.load("conf/data/digits.yaml"))
    assert (d.name, d.num_classes, d.input_size) == ("digits", 10, 32)
    # 1797 images: ceil(0.2 * 1797) = 360 for test, then ceil(0.2 * 1437) = 288 of the rest for holdout
    assert (len(d.train), len(d.holdout), len(d.test)) == (1149, 288, 360)
    x, y = d.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])
    ytr, yva = d.train.labels.numpy(), d.holdout.labels.numpy()
    ptr, pva = np.bincount(ytr, minlength=10) / len(ytr), np.bincount(yva, minlength=10) / len(yva)
    assert np.abs(ptr - pva).max() < 0.01  # stratified
    imgs = d.train.images
    assert abs(float(((imgs - d.train.mean) / d.train.std).mean())) < 1e-4  # normalised on train stats
    # seeded: same seed same split, other seed other split
    again = load_data({"name": "digits", "seed": 0})
    other = load_data({"name": "digits", "seed": 1, "input_size": 16})
    assert torch.equal(again.holdout.images, d.holdout.images) and torch.equal(again.test.images, d.test.images)
    assert other.holdout[0][0].shape == (3, 16, 16) and not torch.equal(other.holdout.labels, d.holdout.labels)


def test_synthetic_defaults_and_seed():
    a, b = load_data({"name": "synthetic"}), load_data({"name": "synthetic", "seed": 0})
    assert (len(a.train), len(a.holdout), len(a.test), a.num_classes, a.input_size) == (128, 64, 64, 4, 32)
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, load_data({"name": "synthetic", "seed": 1}).train.images)


def write_cifar(root, n_per_batch=10, *, skip=(), str_keys=False):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    meta = {key("label_names"): [f"c{i}".encode() for i in range(10)], key("num_cases_per_batch"): n_per_batch}
    files = {"batches.meta": meta}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        files[name] = {key("data"): rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                       key("labels"): [int(v) for v in rng.permutation(np.arange(n_per_batch) % 10)],
                       key("batch_label"): name.encode()}
    for name, obj in files.items():
        if name not in skip:
            with open(root / name, "wb") as f:
                pickle.dump(obj, f, protocol=2)
    return files


def test_cifar10_pickles(tmp_path):
    files = write_cifar(tmp_path / "cifar-10-batches-py")
    d = load_data({"name": "cifar10", "root": str(tmp_path), "input_size": 32})
    # holdout carved from the 30 training images; the official test_batch is the test split
    assert (len(d.train), len(d.holdout), len(d.test), d.num_classes, d.classes[0]) == (40, 10, 10, 10, "c0")
    assert d.test_source == "official"
    x, y = d.test[2]
    assert x.shape == (3, 32, 32) and y == files["test_batch"][b"labels"][2]
    # pixel layout: row-major 3 x 32 x 32 planes, as in the official files
    raw = files["test_batch"][b"data"][2].reshape(3, 32, 32)[1, 4, 5] / 255
    assert float(x[1, 4, 5]) == pytest.approx((raw - 0.4822) / 0.2435, abs=1e-5)
    assert load_data({"name": "cifar10", "root": tmp_path / "cifar-10-batches-py",
                      "input_size": 24}).train[0][0].shape == (3, 24, 24)
    write_cifar(tmp_path / "strkeys", str_keys=True)
    assert len(load_data({"name": "cifar10", "root": tmp_path / "strkeys"}).train) == 40


def test_cifar10_errors(tmp_path):
    write_cifar(tmp_path / "a", skip=("data_batch_3",))
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        load_data({"name": "cifar10", "root": tmp_path / "a"})
    write_cifar(tmp_path / "b")
    (tmp_path / "b" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_batch is not a readable pickle"):
        load_data({"name": "cifar10", "root": tmp_path / "b"})
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_data({"name": "cifar10", "root": tmp_path})
    with pytest.raises(DataError, match="data.root is not set"):
        load_data({"name": "cifar10", "root": None})


def write_images(root, counts, size=(20, 14)):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")


@pytest.mark.parametrize("cache_mb", [1024, 0])  # eager in-memory, and lazy decoding
def test_imagefolder(tmp_path, cache_mb):
    write_images(tmp_path, {"cat": 10, "dog": 10, "emu": 5})
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "emu" / "gray.jpg")  # grayscale -> RGB
    (tmp_path / "dog" / "notes.txt").write_text("not an image, ignored")
    d = load_data({"name": "imagefolder", "root": str(tmp_path), "input_size": 12, "holdout_fraction": 0.2,
                   "test_fraction": 0.2, "seed": 0, "cache_mb": cache_mb})
    assert d.classes == ("cat", "dog", "emu") and d.num_classes == 3
    assert (len(d.train), len(d.holdout), len(d.test)) == (16, 4, 6)  # 26 images: 6 test, 4 of 20 holdout
    assert sorted(d.test[i][1] for i in range(6)) == [0, 0, 1, 1, 2, 2]  # stratified
    x, _ = d.train[0]
    assert x.shape == (3, 12, 12) and torch.isfinite(x).all()


@pytest.mark.parametrize("cache_mb", [1024, 0])
def test_imagefolder_corrupt_file(tmp_path, cache_mb):
    write_images(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"broken\.png cannot be read"):
        load_data({"name": "imagefolder", "root": tmp_path, "cache_mb": cache_mb})


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data({"name": "imagefolder", "root": tmp_path / "nope"})
    with pytest.raises(DataError, match="no class subfolders"):
        load_data({"name": "imagefolder", "root": tmp_path})
    (tmp_path / "empty").mkdir()
    write_images(tmp_path, {"full": 3})
    with pytest.raises(DataError, match="holds no images"):
        load_data({"name": "imagefolder", "root": tmp_path})
    write_images(tmp_path, {"empty": 1})
    with pytest.raises(DataError, match="leave a class empty"):
        load_data({"name": "imagefolder", "root": tmp_path})


def test_bad_config_raises_data_error():
    with pytest.raises(DataError, match="data.name='mnist' is unknown: pass data.name=one of digits"):
        load_data({"name": "mnist"})
    with pytest.raises(DataError, match=r"data.holdout_fraction=1.5 is outside \(0, 1\)"):
        load_data({"name": "digits", "holdout_fraction": 1.5})
    with pytest.raises(DataError, match="data.val_fraction is gone"):
        load_data({"name": "digits", "val_fraction": 0.2})
    with pytest.raises(DataError, match="input_size"):
        load_data({"name": "synthetic", "input_size": 4})
    for e in (DataError("x"), DivergedError("y")):
        assert "\n" not in str(e)
    assert issubclass(DataError, ValueError) and issubclass(DivergedError, RuntimeError)


# --- the real network ----------------------------------------------------------------------------

def test_fits_mobilenet_v3_small_on_synthetic():
    import space
    data = load_data({**SYNTH, "input_size": 32, "n_train": 32, "n_holdout": 16})

    def run(seed: int):
        torch.manual_seed(0)  # same initial weights; the fit seed sets batch order and dropout
        model = space.build_model(space.V3_SMALL, num_classes=4)
        init = state(model)
        res = fit(model, data, quick(steps=2, batch_size=8, lr=0.01, bn_recal_batches=2, seed=seed))
        return res, init, state(model), model

    (a, init, sa, model), (b, _, sb, _), (c, _, sc, _) = run(0), run(0), run(1)
    assert a.steps == b.steps == c.steps == 2 and math.isfinite(a.loss)
    assert (a.top1, a.loss, a.train_loss) == (b.top1, b.loss, b.train_loss)  # seeded: reproduced exactly
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())  # another seed differs
    assert a.loss != c.loss
    trained = [k for k in sa if k.endswith(".weight") and not torch.equal(sa[k], init[k])]
    assert "classifier.3.weight" in trained and "features.0.0.weight" in trained  # both ends were trained
    assert next(model.parameters()).device.type == "cpu"
