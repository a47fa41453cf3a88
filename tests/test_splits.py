"""Three splits: disjoint and seeded; selection (search trials, the sampler, NetAdapt proposals) never
depends on the test split, which is only reported."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import Dataset

import train
from train import DataError, load_data
from train.split import three_way


def test_three_way_is_disjoint_seeded_stratified_and_test_stays_put():
    labels = np.repeat(np.arange(5), 40)
    tr, ho, te = three_way(labels, {"seed": 3, "holdout_fraction": 0.25, "test_fraction": 0.2}, what="x")
    assert (len(tr), len(ho), len(te)) == (120, 40, 40)
    assert not (set(tr) & set(ho) or set(tr) & set(te) or set(ho) & set(te))
    assert sorted([*tr, *ho, *te]) == list(range(200))
    assert np.bincount(labels[te]).tolist() == [8] * 5 and np.bincount(labels[ho]).tolist() == [8] * 5
    again = three_way(labels, {"seed": 3, "holdout_fraction": 0.25, "test_fraction": 0.2}, what="x")
    assert all(np.array_equal(a, b) for a, b in zip((tr, ho, te), again))
    other = three_way(labels, {"seed": 4, "holdout_fraction": 0.25, "test_fraction": 0.2}, what="x")
    assert not np.array_equal(other[2], te)
    # a different holdout fraction moves no image into or out of test
    wider = three_way(labels, {"seed": 3, "holdout_fraction": 0.5, "test_fraction": 0.2}, what="x")
    assert np.array_equal(wider[2], te) and len(wider[1]) == 80


def test_holdout_fraction_that_empties_a_class_names_the_fix():
    with pytest.raises(DataError, match=r"leave a class empty .* data.holdout_fraction=0.001: add samples or change "
                                        r"data.holdout_fraction"):
        load_data({"name": "digits", "holdout_fraction": 0.001})


def _images(root: Path, counts: dict[str, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")


def test_imagefolder_test_root(tmp_path):
    _images(tmp_path / "tr", {"a": 10, "b": 10})
    _images(tmp_path / "te", {"a": 3, "b": 4}, seed=1)
    d = load_data({"name": "imagefolder", "root": str(tmp_path / "tr"), "test_root": str(tmp_path / "te"),
                   "input_size": 8, "holdout_fraction": 0.2})
    assert (len(d.train), len(d.holdout), len(d.test), d.test_source) == (16, 4, 7, "official")
    assert sorted(d.test[i][1] for i in range(7)) == [0, 0, 0, 1, 1, 1, 1]
    _images(tmp_path / "odd", {"a": 3, "c": 3})
    with pytest.raises(DataError, match=r"test_root=.*odd has classes \['a', 'c'\] but data.root has \['a', 'b'\]"):
        load_data({"name": "imagefolder", "root": str(tmp_path / "tr"), "test_root": str(tmp_path / "odd")})


class Counting(Dataset):
    """A test split whose labels are shifted by one class and whose reads are counted."""

    def __init__(self, inner, k: int):
        self.inner, self.k, self.reads = inner, k, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        x, y = self.inner[i]
        return x, (y + 1) % self.k


def _shifted_test(monkeypatch) -> list[Counting]:
    made: list[Counting] = []
    real = train.load_data

    def load(cfg):
        d = real(cfg)
        made.append(Counting(d.test, d.num_classes))
        return dataclasses.replace(d, test=made[-1])

    monkeypatch.setattr(train, "load_data", load)
    return made


SEARCH = ["+space=v3_small", "data=synthetic", "data.input_size=16", "data.n_train=64", "data.n_holdout=32",
          "data.n_test=32", "train.batch_size=32", "train.steps=2", "train.bn_recal_batches=1",
          "latency.input_size=32", "latency.warmup=1", "latency.repeats=5", "sampler.n_startup_trials=2",
          "n_trials=4", "companions=false", "progress=false"]


def _trials(folder: Path) -> list[tuple]:
    from search.results import read_csv

    return [(r["number"], r["arch"], r["top1"], r["latency_ms"]) for r in read_csv(folder / "trials.csv")]


def test_search_selection_does_not_depend_on_the_test_split(tmp_path, monkeypatch):
    from search.run import main

    table = tmp_path / "table.json"
    folder = Path("search/v3_small/synthetic-multi")
    for name in ("fill", "true"):  # the first run fills the latency table, so later runs read fixed numbers
        assert main([*SEARCH, f"latency.table={table}", f"results_dir={tmp_path / name}"]) in (0, None)
    made = _shifted_test(monkeypatch)
    assert main([*SEARCH, f"latency.table={table}", f"results_dir={tmp_path / 'shifted'}"]) in (0, None)
    assert made and made[0].reads == 4 * 32  # each trial's network read the test split once, for the report
    same = _trials(tmp_path / "true" / folder)
    assert len(same) == 4 and _trials(tmp_path / "shifted" / folder) == same  # TPE saw the same numbers
    from search.results import read_csv

    true = [r["test_top1"] for r in read_csv(tmp_path / "true" / folder / "trials.csv")]
    shifted = [r["test_top1"] for r in read_csv(tmp_path / "shifted" / folder / "trials.csv")]
    # The reported figure is the test split's: shifted labels change it (holdout top-1 would not move), and
    # the same predictions cannot be right under both labellings.
    assert all(a is not None and b is not None and a + b <= 1 + 1e-9 for a, b in zip(true, shifted))
    assert true != shifted
    front = read_csv(tmp_path / "true" / folder / "pareto.csv")
    assert front and all(r["test_top1"] is not None for r in front)
    assert json.loads((tmp_path / "true" / folder / "protocol.json").read_text())["selection"] == "holdout"


TINY = "stem8 k3_e16_c8_re k3_e32_c16_s2_re k3_e48_c16_re k3_e64_c24_s2_se_hs k3_e72_c24_se_hs last96 head64"
NETADAPT = [f"start={TINY}", "data=synthetic", "data.input_size=16", "data.n_train=64", "data.n_holdout=32",
            "data.n_test=32", "resource=macs", "latency=measured", "latency.input_size=32", "latency.repeats=5",
            "latency.warmup=1", "pretrain_epochs=2", "long_epochs=1", "short_steps=3", "step=0.1", "budget=0.8",
            "threads=1", "progress=false", "train.batch_size=32", "train.bn_recal_batches=1"]


def _chosen(folder: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    return [(r["iteration"], r["arch"], r["top1"], [p["top1"] for p in r["proposals"]]) for r in rows]


def test_netadapt_selection_does_not_depend_on_the_test_split(tmp_path, monkeypatch):
    from netadapt.run import main

    assert main([*NETADAPT, f"results_dir={tmp_path / 'true'}"]) in (0, None)
    made = _shifted_test(monkeypatch)
    assert main([*NETADAPT, f"results_dir={tmp_path / 'shifted'}"]) in (0, None)
    assert made and made[0].reads > 0
    (a,) = (tmp_path / "true" / "netadapt").iterdir()
    (b,) = (tmp_path / "shifted" / "netadapt").iterdir()
    assert len(_chosen(a)) >= 2 and _chosen(a) == _chosen(b)
    history = [json.loads(line) for line in (a / "history.jsonl").read_text().splitlines()]
    assert all(isinstance(r["test_top1"], float) for r in history)
    assert all("test_top1" not in p for r in history for p in r["proposals"])  # proposals: holdout only
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    assert sa["final"]["top1"] == sb["final"]["top1"]
    # The final network's reported test top-1 is its top-1 on each run's test split, recomputed from final.pt.
    import torch
    from omegaconf import OmegaConf

    from space import build_model, parse_arch
    from train.loop import evaluate

    data = load_data(OmegaConf.merge(OmegaConf.load("conf/data/synthetic.yaml"),
                                     {"input_size": 16, "n_train": 64, "n_holdout": 32, "n_test": 32}))
    for folder, summary, test in ((a, sa, data.test), (b, sb, Counting(data.test, data.num_classes))):
        model = build_model(parse_arch(summary["final"]["arch"]), num_classes=data.num_classes)
        model.load_state_dict(torch.load(folder / "final.pt", weights_only=True))
        assert summary["final"]["test_top1"] == pytest.approx(evaluate(model, test, device=torch.device("cpu"))[0])
    assert sa["final"]["test_top1"] != sb["final"]["test_top1"]
    ba, bb = (json.loads((f / "baseline.json").read_text()) for f in (a, b))
    assert ba["top1"] == bb["top1"] and ba["test_top1"] is not None


def test_unknown_dataset_option_names_the_options():
    with pytest.raises(DataError, match=r"data.colour is not an option of data=synthetic: its options are "
                                        r"holdout_fraction, input_size, n_holdout, n_test, n_train"):
        load_data({"name": "synthetic", "colour": 3})
