"""search/: Pareto and hypervolume on hand-made points, plot infos, results rows, config composition."""
from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from core.cli import CONF_DIR, compose
from search.pareto import HVRef, front_mask, hypervolume, hypervolume_history, hypervolume_raw, pareto_mask
from search.plot import pareto_info, staircase
from search.results import companions_of, counts, pareto_rows, reference_rows, retried, trial_rows


# -- Pareto ----------------------------------------------------------------------------------------
def test_pareto_mask_on_hand_made_points():
    #            top1  lat  macs
    pts = [(0.90, 4.0, 200),  # best accuracy
           (0.80, 2.0, 100),  # fast and small
           (0.80, 3.0, 100),  # dominated by the one above (slower, same rest)
           (0.70, 1.0, 300),  # fastest
           (0.60, 5.0, 400),  # dominated by everything
           (0.80, 2.0, 100)]  # a duplicate of a front point: kept too
    top1, lat, macs = zip(*pts)
    assert front_mask(top1, lat, macs).tolist() == [True, True, False, True, False, True]
    assert pareto_mask(np.array([[1.0, 1.0]])).tolist() == [True]


def test_front_matches_optuna_best_trials():
    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    pts = [(round(a, 2), round(b, 1), int(c)) for a, b, c in
           zip(rng.uniform(0.5, 1, 40), rng.uniform(1, 5, 40), rng.integers(50, 300, 40))]
    for p in pts:
        study.add_trial(optuna.trial.create_trial(values=list(p)))
    mine = {i for i, m in enumerate(front_mask(*zip(*pts))) if m}
    assert mine == {t.number for t in study.best_trials}


def test_hypervolume_by_hand():
    ref = np.array([0.0, 2.0, 2.0])
    # One point: the box it dominates, (0 - (-0.5)) x (2 - 1) x (2 - 1.5).
    assert hypervolume_raw(np.array([[-0.5, 1.0, 1.5]]), ref) == pytest.approx(0.25)
    # Two points, by inclusion-exclusion: 0.25 + 0.4*1.5*1 - 0.4*1*0.5 (their overlap) = 0.65.
    two = np.array([[-0.5, 1.0, 1.5], [-0.4, 0.5, 1.0]])
    assert hypervolume_raw(two, ref) == pytest.approx(0.25 + 0.6 - 0.2)
    # A point outside the box adds nothing; a dominated point adds nothing.
    assert hypervolume_raw(np.vstack([two, [[-0.9, 2.5, 0.1]], [[-0.3, 1.2, 1.8]]]), ref) == pytest.approx(0.65)
    assert hypervolume_raw(np.empty((0, 3)), ref) == 0.0
    assert hypervolume_raw(np.array([[1.0, 1.0], [2.0, 0.5]]), np.array([3.0, 3.0])) == pytest.approx(4.5)


def test_hypervolume_agrees_with_optuna_wfg():
    from optuna._hypervolume import compute_hypervolume  # private, used only as an oracle here

    rng = np.random.default_rng(1)
    for n in (1, 5, 30):
        pts = rng.uniform([-1, 0, 0], [0, 2.5, 2.5], size=(n, 3))
        inside = pts[np.all(pts < [0, 2, 2], axis=1)]
        expect = compute_hypervolume(inside, np.array([0.0, 2.0, 2.0])) if len(inside) else 0.0
        assert hypervolume_raw(pts, np.array([0.0, 2.0, 2.0])) == pytest.approx(expect)


def test_normalised_hypervolume_and_history():
    ref = HVRef(latency_ms=10.0, macs=200e6)
    # The reference network itself at 100 % top-1: 1 x (2-1) x (2-1) of a 1 x 2 x 2 box.
    assert hypervolume(ref, [1.0], [10.0], [200e6]) == pytest.approx(0.25)
    hist = hypervolume_history(ref, [0.5, 0.4, 0.9, 0.2], [10.0, 30.0, 5.0, 1.0], [200e6, 1e6, 100e6, 10e6])
    assert hist[0] == pytest.approx(0.5 * 1 * 1 / 4)
    assert hist[1] == hist[0]  # outside the box (3x the latency): nothing added
    assert all(b >= a for a, b in zip(hist, hist[1:]))
    assert hist[-1] == pytest.approx(hypervolume(ref, [0.5, 0.4, 0.9, 0.2], [10.0, 30.0, 5.0, 1.0],
                                                 [200e6, 1e6, 100e6, 10e6]))


# -- rows from trials, plot infos ------------------------------------------------------------------
def _trial(number, state, **attrs):
    values = [attrs["top1"], attrs["latency_ms"], attrs["macs"]] if state == TrialState.COMPLETE else None
    t = optuna.trial.create_trial(state=state, values=values, user_attrs=attrs)
    t.number = number
    return t


def test_rows_states_and_budget_counting():
    C, F, R, P = TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.PRUNED
    trials = [
        _trial(0, C, top1=0.8, latency_ms=2.0, macs=100, params=5, reference="v3_large", arch="a0"),
        _trial(1, F, failure="trial 1: loss became nan at step 2/3", arch="a1"),
        _trial(2, F, arch="a2", worker="gone"),            # dead worker's trial ...
        _trial(3, C, top1=0.9, latency_ms=3.0, macs=150, params=6, arch="a2", retry_of=2),  # ... redone
        _trial(4, R, arch="a4", worker="w"),
        _trial(5, P, arch="a5"),                             # surplus
        _trial(6, F, interrupted=True, arch="a6"),           # Ctrl-C, not redone yet
    ]
    redone = retried(trials)
    assert redone == {2: 3}
    assert [t.number for t in trials if counts(t, redone)] == [0, 1, 3, 4]
    rows = {r["number"]: r for r in trial_rows(trials)}
    assert rows[0]["reference"] == "v3_large" and rows[0]["top1"] == 0.8
    assert rows[1]["failure"].startswith("trial 1: loss became nan")
    assert rows[2]["failure"] == "its worker died; redone as trial 3"
    assert rows[5]["failure"].startswith("surplus")
    assert rows[6]["failure"] == "interrupted; will be redone"
    assert [r["number"] for r in pareto_rows(list(rows.values()))] == [0, 3]
    assert [r["number"] for r in pareto_rows(list(rows.values()), max_latency_ms=2.5)] == [0]


def test_pareto_info_is_plain_data():
    rows = [{"number": i, "state": "COMPLETE", "top1": t, "latency_ms": ms, "macs": m, "reference": ref}
            for i, (t, ms, m, ref) in enumerate([(0.8, 2.0, 100, "v3"), (0.9, 3.0, 150, ""), (0.7, 2.5, 90, ""),
                                                (0.6, 4.0, 300, "")])]
    rows.append({"number": 4, "state": "FAIL", "top1": None, "latency_ms": 1.0, "macs": 10, "reference": ""})
    others = [{"name": "v3_small", "top1": 0.5, "latency_ms": 1.0, "macs": 60},
              {"name": "diverged", "top1": None, "latency_ms": 1.0, "macs": 60, "failure": "loss became nan"}]
    info = pareto_info(rows, [{"number": 0, "hypervolume": 0.1}], companions=others, title="t", max_macs=200)
    assert [p[0] for p in info.points] == [0, 1, 2]
    assert info.on_front == (True, True, True)
    assert info.front_latency == ((2.0, 0.8), (3.0, 0.9))  # #2 is slower than #0 and less accurate
    assert info.front_macs == ((90, 0.7), (100, 0.8), (150, 0.9))
    assert info.reference == ("v3", 0.8, 2.0, 100)
    assert info.infeasible == ((0.6, 4.0, 300),)
    assert info.hypervolume == ((0, 0.1),)
    assert info.companions == (("v3_small", 0.5, 1.0, 60),)  # marked, though outside the front's constraints
    assert info.points == pareto_info(rows, max_macs=200).points  # and never mixed with the trials
    assert staircase([], []) == ()


def test_reference_rows_put_the_space_reference_first():
    rows = [{"number": 0, "state": "FAIL", "reference": "v3_large", "arch": "x"},   # its worker died ...
            {"number": 1, "state": "COMPLETE", "reference": "", "arch": "y"},
            {"number": 2, "state": "COMPLETE", "reference": "v3_large", "arch": "x"}]  # ... redone
    attrs = {"companions": {"v3_small": {"name": "v3_small", "arch": "s", "top1": 0.4}}}
    out = reference_rows(rows, companions_of(attrs))
    assert [(r["name"], r["trial"], r["arch"]) for r in out] == [("v3_large", 2, "x"), ("v3_small", None, "s")]
    assert reference_rows(rows[:2], companions_of({})) == []  # nothing until the reference has a result


# -- configuration -------------------------------------------------------------------------------
def _options(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_primary_config_has_no_space_and_defaults():
    cfg = compose("search")
    assert cfg.get("space") is None  # typed in the schema (search/settings.py), chosen only by +space=
    assert (cfg.data.name, cfg.sampler.name, cfg.latency.source) == ("digits", "tpe", "lut")
    assert cfg.train.seed == cfg.seed and cfg.study_name == "digits-multi"


@pytest.mark.parametrize("data,sampler,latency", list(itertools.product(
    _options("data"), _options("sampler"), _options("latency"))))
def test_every_group_option_composes(data, sampler, latency):
    from search.samplers import make_sampler

    cfg = compose("search", [f"+space={_options('space')[0]}", f"data={data}", f"sampler={sampler}",
                             f"latency={latency}"])
    assert (cfg.data.name, cfg.sampler.name, cfg.latency.source) == (data, sampler, latency)
    assert cfg.space.name == _options("space")[0]
    assert isinstance(make_sampler(cfg.sampler, 0), optuna.samplers.BaseSampler)


def test_a_surplus_enqueued_trial_goes_back_to_the_queue_with_its_marks():
    from search.study import requeue
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial({"w": 3}, user_attrs={"reference": "v3_large", "note": "dropped"})
    trial = study.ask()
    requeue(study, trial, study.get_trials(deepcopy=False))
    study.tell(trial, state=TrialState.PRUNED)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"w": 3}]
    assert waiting[0].user_attrs == {"reference": "v3_large"}
    study.tell(study.ask(), state=TrialState.PRUNED)  # the queued point is taken again
    sampled = study.ask()  # a sampled trial has no fixed point: nothing is enqueued
    requeue(study, sampled, study.get_trials(deepcopy=False))
    assert study.get_trials(states=(TrialState.WAITING,)) == []
