"""The command line a Hydra user expects: --help, --cfg job, --multirun (refused in one line), and no
``outputs/`` folder anywhere."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from omegaconf import OmegaConf

from core.cli import compose, run


def _main(module: str):
    import importlib

    return importlib.import_module(module).main


def _out(capsys, module: str, argv: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        run(_main(module), argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _line(text: str, start: str) -> str:
    found = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(start)]
    assert found, f"no line starting {start!r} in:\n{text}"
    return found[0]


def test_search_help_lists_groups_with_options_and_keys_with_defaults_and_comments(capsys):
    code, out, err = _out(capsys, "search.run", ["--help"])
    assert code == 0 and err == ""
    assert out.startswith("usage: python -m search.run +space=<name>")
    assert _line(out, "+space") == "+space     v3_large, v3_small"
    assert _line(out, "sampler ") == "sampler    gp, nsga2, random, tpe (default)"
    assert "digits (default)" in _line(out, "data ") and "synthetic" in _line(out, "data ")
    assert "lut (default), measured" in _line(out, "latency ")
    n_trials = _line(out, "n_trials=")
    assert n_trials.startswith("n_trials=30 ") and "# total finished trials wanted in the study" in n_trials
    storage = _line(out, "storage=")  # a comment continued on the next YAML line is joined
    assert storage.startswith("storage=null") and "or a database URL" in storage
    assert _line(out, "train.lr=").startswith("train.lr=0.1")
    assert "# onnxruntime | torch" in _line(out, "latency.backend=onnxruntime")
    assert "# random trials first" in _line(out, "sampler.n_startup_trials=10")
    assert "--multirun is not supported" in out and "space=null" not in out


def test_help_follows_the_overrides_given(capsys):
    code, out, _ = _out(capsys, "search.run", ["+space=v3_small", "sampler=nsga2", "n_trials=7", "--help"])
    assert code == 0
    assert _line(out, "n_trials=").startswith("n_trials=7 ")
    assert _line(out, "sampler.population_size=").startswith("sampler.population_size=10")
    assert "sampler.multivariate" not in out  # tpe's key, not nsga2's
    assert _line(out, "space.name=") == "space.name=v3_small"


@pytest.mark.parametrize("module,argv,words", [
    ("netadapt.run", ["--help"], ["usage: python -m netadapt.run", "data ", "budget=0.8", "train.lr=0.1"]),
    ("measure.lut", ["--help"], ["usage: python -m measure.lut build|validate", "+space", "seed=0"]),
    ("measure.lut", ["build", "-h"], ["usage: python -m measure.lut", "latency.passes=2"]),
])
def test_other_entry_points_answer_help(capsys, module, argv, words):
    code, out, err = _out(capsys, module, argv)
    assert code == 0 and err == ""
    for w in words:
        assert any(ln.strip().startswith(w.strip()) or ln.startswith(w) for ln in out.splitlines()), (w, out)


@pytest.mark.parametrize("config,module,argv", [
    ("search", "search.run", ["+space=v3_small", "sampler=random", "n_trials=7", "train.lr=0.05"]),
    ("netadapt", "netadapt.run", ["budget=0.5", "latency=measured"]),
    ("lut", "measure.lut", ["build", "+space=v3_large", "n=3"]),
])
def test_cfg_job_prints_the_composed_config_and_runs_nothing(capsys, tmp_path, config, module, argv):
    argv = [*argv, f"results_dir={tmp_path}"]
    overrides = [a for a in argv if a not in ("build", "validate")]
    code, out, err = _out(capsys, module, [*argv, "--cfg", "job"])
    assert code == 0 and err == ""
    assert yaml.safe_load(out) == OmegaConf.to_container(compose(config, overrides), resolve=False)
    code, out, _ = _out(capsys, module, [*argv, "--cfg", "job", "--resolve"])
    assert code == 0 and yaml.safe_load(out) == OmegaConf.to_container(compose(config, overrides), resolve=True)
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_cfg_job_checks_values_like_a_run(capsys):
    code, out, err = _out(capsys, "search.run", ["+space=v3_small", "train.batch_size=0", "--cfg", "job"])
    assert code == 2 and out == ""
    assert err == "error: train.batch_size=0 must be an integer >= 1: pass e.g. train.batch_size=64\n"


@pytest.mark.parametrize("module,argv", [
    ("search.run", ["+space=v3_small", "--help"]), ("netadapt.run", ["--cfg", "job"]),
    ("measure.lut", ["validate", "--multirun", "+space=v3_small"]), ("search.run", ["-m", "+space=v3_small"]),
    ("search.plot", ["--help"]), ("measure.show", ["--help"]),
])
def test_as_a_user_runs_it_no_outputs_folder_and_a_clear_exit(tmp_path, module, argv):
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", module, *argv], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    multirun = "--multirun" in argv or "-m" in argv
    assert p.returncode == (2 if multirun else 0), p.stderr
    if multirun:
        assert p.stderr.splitlines() == [p.stderr.strip()] and "start the same command N times" in p.stderr
    else:
        assert "Traceback" not in p.stderr and p.stdout.strip()
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
    assert list(tmp_path.iterdir()) == []
