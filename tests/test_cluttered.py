"""Cluttered digits: a pure function of its seed, source digits disjoint across splits, sizes and balance as set."""
from __future__ import annotations

import numpy as np
import pytest

from train import DataError
from train.cluttered import SPLITS, generate, settings

SMALL = {"seed": 3, "n_train": 60, "n_holdout": 30, "n_test": 40, "canvas": 32, "digit_min": 8, "digit_max": 16,
         "n_clutter": 4}


@pytest.fixture(scope="module")
def small():
    return generate(SMALL)


def test_same_seed_same_arrays(small):
    again = generate(SMALL)
    for k in SPLITS:
        np.testing.assert_array_equal(small[k].images, again[k].images)
        np.testing.assert_array_equal(small[k].labels, again[k].labels)
        np.testing.assert_array_equal(small[k].sources, again[k].sources)


def test_other_seed_other_arrays(small):
    other = generate({**SMALL, "seed": 4})
    for k in SPLITS:
        assert not np.array_equal(small[k].images, other[k].images)


def test_sources_disjoint_between_splits(small):
    used = {k: set(small[k].sources.ravel().tolist()) for k in SPLITS}  # digit and clutter sources
    assert not used["train"] & used["test"]
    assert not used["train"] & used["holdout"]
    assert not used["holdout"] & used["test"]


def test_sizes_balance_and_range(small):
    for k in SPLITS:
        p = small[k]
        n = SMALL[f"n_{k}"]
        assert p.images.shape == (n, 1, 32, 32) and p.images.dtype == np.uint8
        assert p.labels.shape == (n,) and p.sources.shape == (n, 1 + SMALL["n_clutter"])
        counts = np.bincount(p.labels, minlength=10)
        assert counts.max() - counts.min() <= 1  # balanced up to n % 10
        assert p.images.max() > 0


def test_label_is_the_source_digits_class(small):
    from sklearn.datasets import load_digits

    target = load_digits().target
    for k in SPLITS:
        np.testing.assert_array_equal(target[small[k].sources[:, 0]], small[k].labels)


def test_split_sizes_do_not_shift_other_splits(small):
    more = generate({**SMALL, "n_train": 70})
    np.testing.assert_array_equal(small["test"].images, more["test"].images)


@pytest.mark.parametrize("bad", [{"n_test": 5}, {"digit_min": 20, "digit_max": 10}, {"digit_max": 99},
                                 {"clutter_frac": 0}, {"test_sources": 0.6, "holdout_sources": 0.4},
                                 {"n_clutter": -1}])
def test_bad_settings_raise_data_error(bad):
    with pytest.raises(DataError, match="pass"):
        settings({**SMALL, **bad})


def test_load_data_gives_three_normalised_splits():
    from train import load_data

    d = load_data({"name": "cluttered", "input_size": 40, **SMALL})
    assert (len(d.train), len(d.holdout), len(d.test)) == (60, 30, 40)
    x, y = d.train[0]
    assert tuple(x.shape) == (3, 40, 40) and 0 <= y < 10
    assert d.num_classes == 10 and d.name == "cluttered"
