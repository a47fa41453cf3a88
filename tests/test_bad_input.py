"""Bad input, one table: a one-line message naming the problem, exit status 2, no traceback, and
the results already on disk left exactly as they were."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import run

SEARCH = ["data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32",
          "train.steps=1", "train.bn_recal_batches=1", "latency=measured", "latency.input_size=32",
          "latency.warmup=1", "latency.repeats=5", "progress=false", "n_trials=1", "study_name=done"]
NETADAPT = ["data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32", "pretrain_epochs=1",
            "latency=measured", "latency.input_size=32", "latency.warmup=1", "latency.repeats=5",
            "progress=false", "baseline=false"]
KERNEL_4 = "stem16 k4_e16_c16_re last96 head128"
ZERO_CH = "stem16 k3_e0_c16_re last96 head128"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A results folder holding a finished study, plus the bad files the cases point at."""
    from search.run import main as search

    root = tmp_path_factory.mktemp("bad")
    results = root / "results"
    assert search(["+space=v3_small", *SEARCH, f"results_dir={results}"]) == 0
    # A second study whose journal is corrupt in the middle (not a torn tail, which is repaired).
    bad_study = results / "search" / "v3_small" / "broken"
    bad_study.mkdir(parents=True)
    good = (results / "search" / "v3_small" / "done" / "study.log").read_text().splitlines(keepends=True)
    (bad_study / "study.log").write_text(good[0] + "{this is not json\n" + "".join(good[1:]))
    (root / "bad.json").write_text('{"stem": 16, "blocks": [')
    (root / "state.pt").write_bytes(b"not a state dict")
    for c in "ab":
        (root / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((np.random.default_rng(i).random((8, 8, 3)) * 255).astype("uint8")).save(root / "imgs" / c / f"{i}.png")
    (root / "imgs" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "readonly").mkdir()
    return root


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def read_only(path: Path):
    """A folder nobody may write into: chattr +i for root (who ignores modes), chmod otherwise."""
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)]).returncode:
            pytest.skip("cannot make a read-only folder here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)])
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)


def _search_main(argv):
    from search.run import main
    return main(argv)


def _netadapt_main(argv):
    from netadapt.run import main
    return main(argv)


def _show_main(argv):
    from measure.show import main
    return main(argv)


def _lut_main(argv):
    from measure.lut import main
    return main(argv)


# (name, command, argv with {root}/{results} placeholders, words the message must hold)
CASES = [
    ("unknown space", _search_main, ["+space=v3_tiny"], "unknown space 'v3_tiny'"),
    ("space as a plain key", _search_main, ["space=v3_small"], "space"),
    ("no space", _search_main, [], "no space given"),
    ("unknown override", _search_main, ["+space=v3_small", "colour=red"], "bad override"),
    ("unknown sampler", _search_main, ["+space=v3_small", "sampler=annealing"], "unknown sampler 'annealing'"),
    ("malformed arch string", _show_main, ["stem16 k3_e16_c16_xx last96 head128"], "cannot read token"),
    ("malformed arch JSON", _show_main, ["{root}/bad.json"], "is not valid JSON"),
    ("kernel 4", _show_main, [KERNEL_4], "kernel must be an odd integer >= 3, got 4"),
    ("zero channels", _netadapt_main, [f"start={ZERO_CH}"], "expand must be a positive integer, got 0"),
    ("missing dataset folder", _search_main, ["+space=v3_small", "data=imagefolder", "data.root={root}/nope"],
     "does not exist"),
    ("corrupt image", _search_main, ["+space=v3_small", "data=imagefolder", "data.root={root}/imgs"],
     "broken.png cannot be read"),
    ("cifar10 without root", _search_main, ["+space=v3_small", "data=cifar10"], "data.root is not set"),
    ("unreachable storage", _search_main, ["+space=v3_small", "storage=postgresql://u:pw@127.0.0.1:9/db"],
     "cannot open storage"),
    ("malformed storage URL", _search_main, ["+space=v3_small", "storage=nosuch://x"], "unknown scheme 'nosuch'"),
    ("corrupted journal", _search_main, ["+space=v3_small", "study_name=broken"], "is corrupt"),
    ("budget above start latency", _netadapt_main, ["budget=1.5"], "budget=1.5"),
    ("budget_ms above start latency", _netadapt_main, ["budget_ms=1e6"], "budget_ms"),
    ("NaN loss", _netadapt_main, ["train.lr=1e30"], "loss became nan"),
    ("missing weights file", _netadapt_main, ["weights={root}/none.pt"], "none.pt"),
    ("unreadable weights", _netadapt_main, ["weights={root}/state.pt"], "state.pt"),
    ("unknown netadapt start", _netadapt_main, ["start=v3_medium"], "v3_medium"),
    ("unknown latency backend", _lut_main, ["build", "+space=v3_small", "latency.backend=tpu"],
     "unknown latency backend 'tpu'"),
    ("read-only results folder", _search_main, ["+space=v3_small", "results_dir={root}/readonly"], "readonly"),
]


@pytest.mark.parametrize("name,main,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, capsys, name, main, argv, words):
    results = world / "results"
    base = {_search_main: SEARCH, _netadapt_main: NETADAPT}.get(main, [])
    if any(a.startswith("data=") for a in argv):  # another dataset: drop the synthetic one's keys
        base = [a for a in base if not a.startswith("data")]
    argv = [a.format(root=world, results=results) for a in argv]
    extra = [] if main is _show_main or any(a.startswith("results_dir=") for a in argv) else [f"results_dir={results}"]
    before = _snapshot(world)
    with read_only(world / "readonly") if name == "read-only results folder" else _noop():
        with pytest.raises(SystemExit) as exit_:
            run(main, [*base, *argv, *extra])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exit_.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert words in lines[0], lines[0]
    after = _snapshot(world)
    assert {k: after.get(k) for k in before} == before, "existing results were changed"
    assert not [k for k in after if k.endswith(".tmp")], "a half-written file was left behind"


def test_table_covers_at_least_15_kinds():
    assert len(CASES) >= 15


@contextmanager
def _noop():
    yield
