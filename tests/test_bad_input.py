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
    (root / "foreign.json").write_text('{"format": 2, "machine": "elsewhere-0123abcd", "backend": "onnxruntime", '
                                       '"threads": 1, "input_size": 32, "reference": {"ms": 3.0}, "entries": {}}')
    (root / "uncalibrated.json").write_text('{"format": 2, "backend": "onnxruntime", "threads": 1, "input_size": 32, '
                                            '"calibration": null, "reference": {"ms": 3.0}, "entries": {}}')
    (root / "state.pt").write_bytes(b"not a state dict")
    for c in "ab":
        (root / "imgs" / c).mkdir(parents=True)
        for i in range(6):
            pixels = (np.random.default_rng(i).random((8, 8, 3)) * 255).astype("uint8")
            Image.fromarray(pixels).save(root / "imgs" / c / f"{i}.png")
    for c in "xy":  # a test folder whose classes are not those of imgs/
        (root / "other" / c).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(root / "other" / c / "0.png")
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
    ("space as a plain key", _search_main, ["space=v3_small"],
     "bad override: conf/search.yaml presets no space: pass +space=v3_small (a leading +)"),
    ("no space", _search_main, [], "no space given"),
    ("unknown override", _search_main, ["+space=v3_small", "colour=red"], "bad override"),
    ("cuda on a host without it", _search_main, ["+space=v3_small", "train.device=cuda"],
     "train.device=cuda but this host has no CUDA device"),
    ("unknown sampler", _search_main, ["+space=v3_small", "sampler=annealing"], "unknown sampler 'annealing'"),
    ("malformed arch string", _show_main, ["stem16 k3_e16_c16_xx last96 head128"], "cannot read token"),
    ("malformed arch JSON", _show_main, ["{root}/bad.json"], "is not valid JSON"),
    ("kernel 4", _show_main, [KERNEL_4], "kernel must be an odd integer >= 3, got 4"),
    ("zero channels", _netadapt_main, [f"start={ZERO_CH}"], "expand must be a positive integer, got 0"),
    ("missing dataset folder", _search_main, ["+space=v3_small", "data=imagefolder", "data.root={root}/nope"],
     "does not exist"),
    ("corrupt image", _search_main, ["+space=v3_small", "data=imagefolder", "data.root={root}/imgs"],
     "broken.png cannot be read"),
    ("unknown dataset option", _search_main, ["+space=v3_small", "+data.colour=red"],
     "data.colour is not an option of data=synthetic"),
    ("holdout leaves a class empty", _search_main, ["+space=v3_small", "data=digits", "data.holdout_fraction=0.001"],
     "leave a class empty"),
    ("test root with other classes", _search_main, ["+space=v3_small", "data=imagefolder", "data.root={root}/imgs",
                                                     "data.test_root={root}/other"], "has classes ['x', 'y'] but data.root has ['a', 'b']"),
    ("val_fraction from before holdout", _netadapt_main, ["+data.val_fraction=0.2"], "data.val_fraction is gone"),
    ("unknown accuracy estimator", _search_main, ["+space=v3_small", "accuracy=oracle"],
     "unknown accuracy 'oracle'"),
    ("unreadable latency table", _search_main, ["+space=v3_small", "latency.table={root}/bad.json"],
     "bad.json is unreadable"),
    ("uncalibrated latency table", _search_main, ["+space=v3_small", "latency=lut",
                                                  "latency.table={root}/uncalibrated.json", "latency.measure_missing=false"],
     "uncalibrated.json is not calibrated"),
    ("measured with another machine's table", _search_main, ["+space=v3_small", "latency.table={root}/foreign.json"],
     "made on machine elsewhere-0123abcd"),
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
    # Tried as a new user would: flags Hydra users expect, and values that used to reach torch.
    ("multirun", _search_main, ["+space=v3_small", "--multirun", "n_trials=2"], "--multirun is not supported"),
    ("multirun -m", _netadapt_main, ["-m"], "start the same command N times"),
    ("unknown flag", _lut_main, ["build", "+space=v3_small", "--verbose"], "unknown option --verbose"),
    ("cfg hydra", _search_main, ["+space=v3_small", "--cfg", "hydra"], "--cfg hydra is not understood"),
    ("storage from a missing env var", _search_main, ["+space=v3_small", "storage=${{oc.env:BNECK_NO_SUCH_VAR}}"],
     "BNECK_NO_SUCH_VAR"),
    ("train.device gpu", _search_main, ["+space=v3_small", "train.device=gpu"], "train.device=gpu must be"),
    ("unknown latency unit", _lut_main, ["build", "+space=v3_small", "latency.unit=device"],
     "unknown latency unit 'device': use one of machine, build"),
    ("latency threads 0", _netadapt_main, ["latency.threads=0"], "latency.threads=0 must be an integer >= 1"),
    ("input size 0", _search_main, ["+space=v3_small", "latency.input_size=0"], "latency.input_size=0"),
    ("negative weight decay", _netadapt_main, ["train.weight_decay=-1"], "train.weight_decay=-1"),
    ("momentum 2", _search_main, ["+space=v3_small", "train.momentum=2"], "train.momentum=2"),
    ("label smoothing 1", _search_main, ["+space=v3_small", "train.label_smoothing=1"], "train.label_smoothing=1"),
    ("n_trials in words", _search_main, ["+space=v3_small", "n_trials=ten"], "n_trials=ten must be an integer"),
    ("unknown select", _netadapt_main, ["select=speed"], "unknown select 'speed'"),
    ("unknown importance", _netadapt_main, ["importance=l1"], "unknown importance 'l1': use one of bn_weight"),
    ("epochs in netadapt's train", _netadapt_main, ["train.epochs=3"], "bad override"),
    ("netadapt with accuracy=supernet", _netadapt_main, ["accuracy=supernet"], "NetAdapt has none: pass accuracy=train"),
]


# -- generated: every key of every config group (but data, whose keys another change reworks) with each kind
# of bad value its rule admits -------------------------------------------------------------------------------
def _schemas():
    from measure.settings import LutConfig
    from netadapt.settings import NetAdaptConfig
    from search.settings import GPSettings, NSGA2Settings, RandomSettings, SearchConfig, TPESettings
    from space.settings import SpaceSettings
    from train.settings import (
        ClutteredData,
        DataBase,
        ImageFolderData,
        SplitData,
        SupernetAccuracy,
        SyntheticData,
        TrainAccuracy,
    )

    data = [(_search_main, cls, [f"data={name}"], "data.") for name, cls in (
        ("digits", SplitData), ("cifar10", DataBase), ("imagefolder", ImageFolderData), ("synthetic", SyntheticData),
        ("cluttered", ClutteredData))]
    return data + [(_search_main, SupernetAccuracy, ["accuracy=supernet"], "accuracy."),
                   (_search_main, TrainAccuracy, [], "accuracy."), (_netadapt_main, TrainAccuracy, [], "accuracy."),(_search_main, SearchConfig, [], ""), (_netadapt_main, NetAdaptConfig, [], ""),
            (_lut_main, LutConfig, ["build", "+space=v3_small"], ""),
            (_search_main, SpaceSettings, ["+space=v3_small"], "space.")] + [
        (_search_main, cls, [f"sampler={cls().name}"], "sampler.")
        for cls in (TPESettings, NSGA2Settings, GPSettings, RandomSettings)]


def _bad_values(r):
    """(raw override value, expected start of the message) for each kind of bad value of rule ``r``."""
    if r.kind == "bool":
        return ["maybe"]
    if r.kind == "choice":
        return ["bogus"]
    if r.kind == "list":
        return ["3", "[]"]
    if r.kind == "str":
        return ["a/b" if "." in (r.pattern or "") else "gpu"] if r.pattern else []
    out = ["abc"]  # not a number
    if r.kind == "int":
        out.append("1.5")
    for bound, bad in ((r.ge, lambda b: b - 1), (r.gt, lambda b: b), (r.le, lambda b: b + 1), (r.lt, lambda b: b)):
        if bound is not None:
            out.append(f"{bad(bound):g}")
    return out


def _leaf_rules(cls, prefix):
    import dataclasses

    for f in dataclasses.fields(cls):
        t = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            yield from _leaf_rules(t, f"{prefix}{f.name}.")
        elif "rule" in f.metadata:
            yield f"{prefix}{f.name}", f.metadata["rule"]


def _generated():
    cases = []
    for main, cls, argv, prefix in _schemas():
        for key, r in _leaf_rules(cls, prefix):
            for raw in _bad_values(r):
                words = (f"unknown {key.replace('.', ' ').replace('_', ' ')} '{raw}'" if r.kind == "choice"
                         else f"{key}={raw} must be")
                name = " ".join([main.__name__[1:-5], *argv[-1:], f"{key}={raw}"])
                cases.append((name, main, [*argv, f"{key}={raw}"], words))
    return cases


CASES += _generated()


@pytest.mark.parametrize("name,main,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, capsys, name, main, argv, words):
    check_case(world, capsys, name, main, argv, words)


def check_case(world, capsys, name, main, argv, words):
    results = world / "results"
    base = {_search_main: SEARCH, _netadapt_main: NETADAPT}.get(main, [])
    if any(a.startswith("data=") for a in argv):  # another dataset: drop the synthetic one's keys
        base = [a for a in base if not a.startswith("data")]
    if any(a.startswith("latency=") for a in argv):  # another latency model
        base = [a for a in base if not a.startswith("latency=")]
    argv = [a.format(root=world, results=results) for a in argv]
    extra = [] if main is _show_main or any(a.startswith("results_dir=") for a in argv) else [f"results_dir={results}"]
    before = _snapshot(world)
    with read_only(world / "readonly") if name == "read-only results folder" else _noop():
        with pytest.raises(SystemExit) as exit_:
            run(main, [*base, *argv, *extra], cli=_cli(main))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    RAISED[name] = _chain(exit_.value.__context__)  # the errors that ended the run, for the coverage test below
    assert exit_.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert words in lines[0], lines[0]
    after = _snapshot(world)
    assert {k: after.get(k) for k in before} == before, "existing results were changed"
    assert not [k for k in after if k.endswith(".tmp")], "a half-written file was left behind"


RAISED: dict[str, set[type]] = {}


def _chain(e: BaseException | None) -> set[type]:
    """The classes of ``e`` and of the errors it was raised from (a wrapped DivergedError counts)."""
    seen = set()
    while e is not None and type(e) not in seen:
        seen.add(type(e))
        e = e.__cause__ or e.__context__
    return seen


def _user_error_classes() -> set[type]:
    """Every user error class bneck defines (its packages imported, subclasses walked)."""
    import importlib

    from core.errors import UserError

    for package in ("core.cli", "space", "measure", "train", "search", "netadapt"):
        importlib.import_module(package)
    found, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in {"core", "space", "measure", "train", "search", "netadapt"}:
                found.add(sub)
                todo.append(sub)
    return found


def test_the_table_reaches_every_kind_of_user_error(world, capsys):
    classes = _user_error_classes()
    for case in CASES:  # cases a selection (-k) left out are run here, until every class is reached
        if not classes - set().union(*RAISED.values()):
            break
        if case[0] not in RAISED:
            check_case(world, capsys, *case)
    missing = {c.__qualname__ for c in classes - set().union(*RAISED.values())}
    assert not missing, f"no bad-input case reaches {sorted(missing)}"


def test_every_user_error_is_one_line_and_exit_2(capsys):
    classes = _user_error_classes()
    assert {c.__name__ for c in classes} >= {"UsageError", "ArchError", "MeasureError", "DataError", "DivergedError",
                                             "SearchError", "NetAdaptError"}
    for error in classes:
        def main(argv, error=error):
            raise error("the problem and its fix\nmore detail the user does not need")

        with pytest.raises(SystemExit) as exit_:
            run(main, [])
        assert exit_.value.code == 2, error
        assert capsys.readouterr().err == "error: the problem and its fix\n", error


@pytest.mark.parametrize("bug", [ValueError("x"), KeyError("x"), TypeError("x"), RuntimeError("x")], ids=repr)
def test_a_programming_error_is_not_passed_off_as_bad_input(capsys, bug):
    def main(argv):
        raise bug

    with pytest.raises(type(bug)):  # a traceback, not "error: ..." and exit 2
        run(main, [])
    assert "error:" not in capsys.readouterr().err


def _cli(main):
    import measure.lut
    import netadapt.run
    import search.run

    return {_search_main: search.run.CLI, _netadapt_main: netadapt.run.CLI, _lut_main: measure.lut.CLI}.get(main)


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


@pytest.mark.parametrize("config,overrides", [
    ("search", ["+space=v3_small", f"sampler={s}"]) for s in ("tpe", "nsga2", "gp", "random")]
    + [("search", ["+space=v3_small", "accuracy=supernet"]), ("netadapt", []), ("lut", ["+space=v3_large"])])
def test_every_key_has_a_rule_and_bad_values_in_the_table(config, overrides):
    """Every key the YAML files define (data aside) has a rule, and each rule that can be broken
    at compose time has its bad values in CASES: a key added to a YAML without one fails here."""
    from omegaconf import OmegaConf

    from core.cli import compose, schema
    from core.settings import rule_for

    root = schema(config)
    keys = [k for k in _leaves(OmegaConf.to_container(compose(config, overrides), resolve=False))
            if k.split(".")[0] != "data"]
    assert len(keys) >= 10
    tested = {a.split("=")[0] for _, _, argv, _ in CASES for a in argv}
    for key in keys:
        r = rule_for(key, root)
        assert r is not None, f"{config}: {key} has no rule in its structured config"
        assert not _bad_values(r) or key in tested, f"{config}: no bad value of {key} in the table"


@contextmanager
def _noop():
    yield
