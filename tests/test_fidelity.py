"""python -m search.fidelity: the networks it picks, its statistics and verdicts, shared and resumed trainings,
bad input; and train.seeds, the switch its verdicts propose."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import REPO
from scipy import stats as sp

from search import fidelity_report as fr
from search.fidelity_jobs import from_study, key_of, read_jsonl, sampled
from search.results import COLUMNS, to_csv
from space import V3_SMALL, format_arch, load_space

TINY = ["+space=v3_small", "data=synthetic", "data.input_size=16", "data.n_train=64", "data.n_holdout=32",
        "data.n_test=16", "train.batch_size=32", "train.bn_recal_batches=1", "fidelity.archs=8", "fidelity.seeds=2",
        "fidelity.steps=[2]", "progress=false"]


def _env() -> dict:
    return dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def fidelity(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.fidelity", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, words", [
    ("fidelity.archs=4", "fidelity.archs=4 must be an integer >= 8"),
    ("fidelity.seeds=1", "fidelity.seeds=1 must be an integer >= 2"),
    ("fidelity.steps=[0]", "fidelity.steps=[0] must be whole numbers of steps >= 1"),
    ("fidelity.study=/no/such/study", "fidelity.study=/no/such/study: no study there"),
    ("train.seeds=2", "train.seeds=2 is a search's setting"),
])
def test_bad_input_ends_in_one_line_and_exit_2(tmp_path, override, words):
    p = fidelity(*TINY, override, f"results_dir={tmp_path}")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error: ") and words in p.stderr, p.stderr
    assert not (tmp_path / "fidelity").exists()  # nothing written


def test_no_space_and_help(tmp_path):
    p = fidelity("data=synthetic", f"results_dir={tmp_path}")
    assert p.returncode == 2 and "no space given: add +space=<name>" in p.stderr
    h = fidelity("--help")
    assert h.returncode == 0 and "fidelity.steps=" in h.stdout and "fidelity.study=null" in h.stdout


# -- the statistics and the verdicts ------------------------------------------------------------------------
def test_best_quarter_is_chosen_by_the_seed_mean_and_tau_is_scipys():
    rng = np.random.default_rng(0)
    true = np.linspace(60, 90, 16)
    runs = np.column_stack([true + rng.normal(0, 1, 16), true + rng.normal(0, 1, 16)])
    runs[0] = [99.0, 10.0]  # best on seed 0 alone, worst by its mean: never in the best quarter
    gs = fr.groups(runs, n_boot=300)
    assert [g.label for g in gs] == ["all", "best half", "best quarter"] and [g.n for g in gs] == [16, 8, 4]
    means = runs.mean(axis=1)
    assert set(gs[-1].rows) == set(np.argsort(-means)[:4].tolist()) and 0 not in gs[-1].rows
    q = runs[gs[-1].rows]
    assert gs[-1].tau == pytest.approx(sp.kendalltau(q[:, 0], q[:, 1]).statistic)
    assert gs[0].rho == pytest.approx(sp.spearmanr(runs[:, 0], runs[:, 1]).statistic)
    assert gs[0].tau_lo <= gs[0].tau <= gs[0].tau_hi


def test_verdicts_say_separated_or_name_the_switch_with_its_figure():
    rng = np.random.default_rng(1)
    spread = np.linspace(60, 90, 40)  # the best quarter spans 7 points, seed noise 0.3: separated
    clear = np.column_stack([spread + rng.normal(0, 0.3, 40), spread + rng.normal(0, 0.3, 40)])
    flat = np.concatenate([np.linspace(60, 85, 30), 89 + np.linspace(0, 0.6, 10)])  # the top 10 within 0.6 points
    noisy = np.column_stack([flat + rng.normal(0, 0.5, 40), flat + rng.normal(0, 0.5, 40)])
    computed = {600: fr.groups(noisy, n_boot=300), 1200: fr.groups(clear, n_boot=300)}
    good = fr.verdict(1200, computed[1200], 5000, computed)
    assert "the best quarter is separated" in good
    bad = fr.verdict(600, computed[600], 5000, computed)
    assert "the best quarter is not separated" in bad
    k = fr.seeds_needed(computed[600][-1].reliability)
    assert k is None or f"`train.seeds={k}`" in bad
    assert "`data.n_holdout=20000`" in bad and "another budget: at 1200 steps" in bad
    assert "a holdout of 20000 images" in fr.verdict(600, computed[600], 5000, computed, holdout_key=False)
    assert "not judged" in fr.verdict(3, fr.groups(clear[:8], n_boot=50), 64, {})


def test_seeds_needed_follows_spearman_brown():
    assert fr.seeds_needed(0.5) == 4  # 4 x 0.5 / (1 + 3 x 0.5) = 0.8
    assert fr.seeds_needed(0.9) == 1 and fr.seeds_needed(0.0) is None


# -- the networks ------------------------------------------------------------------------------------------
def test_the_sample_is_seeded_and_starts_with_the_reference():
    space = load_space("v3_small")
    a, b = sampled(space, 8, 0), sampled(space, 8, 0)
    assert a == b and len({n.arch for n in a}) == 8
    assert a[0].arch == format_arch(V3_SMALL) and sampled(space, 8, 1) != a


def _trials(n: int = 12) -> list[dict]:
    space, rng = load_space("v3_small"), random.Random(5)
    out = []
    for i in range(n):
        out.append({"number": i, "state": "COMPLETE", "arch": format_arch(space.sample(rng)),
                    "top1": round(0.5 + 0.03 * ((7 * i) % n), 4), "test_top1": round(0.9 - 0.03 * i, 4),
                    "latency_ms": 1.0, "macs": 1000, "params": 100, "reference": "", "failure": ""})
    out.append({**out[0], "number": n, "state": "FAIL", "top1": None})  # unfinished trials are never picked
    return out


def test_a_study_folder_is_ranked_by_holdout_never_test(tmp_path):
    rows = _trials()
    (tmp_path / "trials.csv").write_text(to_csv(rows, COLUMNS))
    picked = from_study(str(tmp_path), 8)
    by_holdout = sorted(rows[:-1], key=lambda r: -r["top1"])[:8]
    assert [n.name for n in picked] == [f"trial {r['number']}" for r in by_holdout]
    # shift and scramble the test column: the same networks are chosen
    shifted = [{**r, "test_top1": None if r["test_top1"] is None else 1.0 - r["test_top1"]} for r in rows]
    (tmp_path / "trials.csv").write_text(to_csv(shifted, COLUMNS))
    assert from_study(str(tmp_path), 8) == picked


def test_a_storage_url_is_read_through_optuna_by_holdout(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize", "minimize"])
    for r in _trials():
        if r["state"] != "COMPLETE":
            continue
        study.add_trial(optuna.trial.create_trial(values=[r["top1"], 1.0, 1000.0], user_attrs={
            "arch": r["arch"], "top1": r["top1"], "test_top1": 1.0 - r["test_top1"]}))
    picked = from_study(url, 8)
    (tmp_path / "trials.csv").write_text(to_csv(_trials(), COLUMNS))
    assert [n.arch for n in picked] == [n.arch for n in from_study(str(tmp_path), 8)]
    assert [n.arch for n in from_study(f"{url}#s", 8)] == [n.arch for n in picked]
    with pytest.raises(Exception, match="no study 'x' there"):
        from_study(f"{url}#x", 8)
    with pytest.raises(Exception, match="fewer than fidelity.top=20"):
        from_study(url, 20)


# -- killed, rerun and shared --------------------------------------------------------------------------------
def test_killed_rerun_and_two_workers_train_each_network_once(tmp_path):
    args = [*TINY, f"results_dir={tmp_path}"]
    folder = tmp_path / "fidelity" / "v3_small" / "synthetic"
    p = subprocess.Popen([sys.executable, "-m", "search.fidelity", *args], cwd=REPO, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:  # killed on the event, not on a clock: the first training is recorded
        if line.startswith("trained "):
            p.send_signal(signal.SIGKILL)
            break
    p.wait()
    p.stdout.close()
    first = read_jsonl(folder / "fidelity.jsonl")
    assert 1 <= len(first) < 16
    workers = [subprocess.Popen([sys.executable, "-m", "search.fidelity", *args], cwd=REPO, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [w.communicate(timeout=900) for w in workers]
    assert all(w.returncode == 0 for w in workers), outs
    rows = read_jsonl(folder / "fidelity.jsonl")
    keys = [key_of(r) for r in rows]
    assert len(rows) == 16 and len(set(keys)) == 16  # every (network, budget, seed) once
    assert rows[:len(first)] == first  # what the killed run finished was kept, not redone
    trained_now = sum(o.count("\ntrained ") + o.startswith("trained ") for o, _ in outs)
    assert trained_now == 16 - len(first)
    assert all(r["settings"]["train"]["steps"] == 2 and r["settings"]["train"]["seed"] == r["seed"] for r in rows)
    for name in ("fidelity.md", "fidelity.png"):
        assert (folder / name).stat().st_size > 0
    again = fidelity(*args)
    assert again.returncode == 0 and "0 trainings run now, 16 of 16 done" in again.stdout
    assert len(read_jsonl(folder / "fidelity.jsonl")) == 16
    md = (folder / "fidelity.md").read_text()
    assert "| best quarter | 2 |" in md and "2 steps: not judged" in md
    # another training setting on the same folder is refused, not mixed in
    changed = fidelity(*args, "train.lr=0.05")
    assert changed.returncode == 2 and "pass another fidelity.run" in changed.stderr


# -- train.seeds ---------------------------------------------------------------------------------------------
def test_train_seeds_2_is_reproducible_and_recorded_per_seed():
    from train import TrainConfig, TrainEstimator, load_data

    data = load_data({"name": "synthetic", "input_size": 16, "n_train": 64, "n_holdout": 32, "n_test": 16})
    cfg = TrainConfig(steps=2, batch_size=32, bn_recal_batches=1, seed=3, device="cpu")
    est = TrainEstimator(data, cfg, seeds=2)
    a, b = est(V3_SMALL), est(V3_SMALL)
    same = lambda x: (x.top1, x.per_seed, x.test_top1, x.loss, x.steps)  # noqa: E731  (all but the wall time)
    assert same(a) == same(b) and len(a.per_seed) == 2 and a.steps == 4
    assert a.top1 == pytest.approx(sum(a.per_seed) / 2, abs=1e-6)
    one = TrainEstimator(data, cfg)(V3_SMALL)  # seed 3 alone is the first of the two
    assert one.top1 == a.per_seed[0] and one.per_seed is None
    assert est.protocol()["budget"]["seeds"] == 2 and "seeds" not in TrainEstimator(data, cfg).protocol()["budget"]


def test_trials_csv_keeps_the_mean_and_each_seed(tmp_path):
    from search.results import trial_rows

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0, 10.0], user_attrs={
        "arch": "a", "top1": 0.5, "top1_per_seed": [0.4375, 0.5625], "latency_ms": 1.0, "macs": 10}))
    row = trial_rows(study.get_trials())[0]
    assert row["top1"] == 0.5 and row["top1_per_seed"] == "0.4375;0.5625"


def test_train_seeds_is_refused_for_the_supernet():
    from train import TrainConfig, load_data, make_estimator

    data = load_data({"name": "synthetic", "input_size": 16, "n_train": 16, "n_holdout": 16, "n_test": 16})
    with pytest.raises(Exception, match="train.seeds=2 applies to accuracy=train"):
        make_estimator({"name": "supernet"}, data, TrainConfig(device="cpu"), seeds=2)


def test_report_reads_back_what_was_recorded(tmp_path):
    recs = [{"kind": "train", "network": f"n{i}", "arch": f"a{i}", "steps": 5, "seed": s, "top1": 0.5 + 0.01 * i + 0.001 * s}
            for i in range(8) for s in (0, 1)]
    recs.append({"kind": "train", "network": "n9", "arch": "a9", "steps": 5, "seed": 0, "top1": 0.9})  # one seed only
    names, runs, archs = fr.runs_by_budget(recs, 2)[5]
    assert len(names) == 8 and runs.shape == (8, 2) and "a9" not in archs
    assert runs[3, 1] == pytest.approx(100 * (0.5 + 0.03 + 0.001))
    Path(tmp_path / "x.json").write_text(json.dumps(recs))


def test_netadapt_scores_each_proposal_by_the_mean_of_train_seeds(tmp_path):
    from netadapt.run import main

    tiny = "stem8 k3_e16_c8_re k3_e32_c16_s2_re k3_e48_c16_re k3_e64_c24_s2_se_hs k3_e72_c24_se_hs last96 head64"
    args = [f"start={tiny}", "data=synthetic", "data.input_size=16", "data.n_train=64", "data.n_holdout=32",
            "resource=macs", "latency=measured", "latency.input_size=32", "latency.repeats=5", "latency.warmup=1",
            "pretrain_epochs=1", "long_epochs=0", "short_steps=2", "step=0.05", "threads=1", "progress=false",
            "train.batch_size=32", "train.bn_recal_batches=1", "budget=0.9", "max_iterations=1", "baseline=false",
            "train.seeds=2", f"results_dir={tmp_path}"]
    assert main(args) == 0
    (folder,) = (tmp_path / "netadapt").iterdir()
    rec = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()][1]
    for p in rec["proposals"]:
        assert len(p["top1_per_seed"]) == 2 and p["top1"] == pytest.approx(sum(p["top1_per_seed"]) / 2, abs=1e-6)


def test_accuracy_supernet_scores_the_same_networks_against_their_seed_mean(tmp_path):
    p = fidelity(*TINY, "accuracy=supernet", "accuracy.steps=4", "accuracy.batch_size=16",
                 "accuracy.bn_recal_batches=1", "accuracy.checkpoint_every=2", f"results_dir={tmp_path}")
    assert p.returncode == 0, p.stderr
    folder = tmp_path / "fidelity" / "v3_small" / "synthetic"
    rows = read_jsonl(folder / "fidelity.jsonl")
    scored = [r for r in rows if r["kind"] == "supernet"]
    trained = [r for r in rows if r["kind"] == "train"]
    assert len(trained) == 16 and len(scored) == 8 and {r["arch"] for r in scored} == {r["arch"] for r in trained}
    assert all(r["settings"]["accuracy"]["estimator"] == "supernet" for r in scored)
    md = (folder / "fidelity.md").read_text()
    assert "Supernet score against the standalone seed mean" in md and "| all | 8 |" in md


def test_the_figure_info_marks_the_best_quarter_by_seed_mean():
    runs = np.array([[50.0, 52.0], [90.0, 10.0], [70.0, 71.0], [60.0, 59.0], [80.0, 79.0], [40.0, 41.0],
                     [30.0, 33.0], [20.0, 22.0]])
    names = [f"n{i}" for i in range(8)]
    computed = {5: fr.groups(runs, n_boot=50)}
    info = fr.plot_info("t", {5: (names, runs, names)}, computed)
    (panel,) = info.panels
    assert sorted(n for n, b in zip(panel.names, panel.best) if b) == ["n2", "n4"]  # n1 leads on seed 0 only
    assert panel.seed0 == tuple(runs[:, 0]) and panel.seed1 == tuple(runs[:, 1])
