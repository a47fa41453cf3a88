"""search.run end to end: real Optuna journal storage, real training (synthetic), real latency.

The tests of this module share one study folder and run in order: a 3-trial study, its resumes,
a dead worker's trial redone. Each trial trains 1 step on 64 synthetic images; latency comes from
one lookup table at 32 px shared by all tests (so two studies see identical latencies). Every study
also evaluates the other reference network once (V3-Large beside the v3_small space, V3-Small
beside v3_large), so the table holds both references' entries after the first test.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest

import measure
from search.run import main
from space import V3_LARGE, V3_SMALL, format_arch

BASE = ["+space=v3_small", "data=synthetic", "data.n_train=64", "data.n_holdout=32", "train.batch_size=32",
        "train.steps=1", "train.bn_recal_batches=1", "latency.input_size=32", "latency.warmup=1",
        "latency.repeats=5", "sampler.n_startup_trials=2", "progress=false"]
STUDY = Path("search/v3_small/synthetic-multi")


@pytest.fixture(scope="module")
def lut(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lut") / "table.json"


def args(results_dir, lut, *extra) -> list[str]:
    return [*BASE, f"latency.table={lut}", f"results_dir={results_dir}", *extra]


def search(results_dir, lut, *extra) -> int:
    return main(args(results_dir, lut, *extra))


def search_large(results_dir, lut, *extra) -> int:
    """A study of the v3_large space: its reference is V3-Large (a trial), V3-Small its companion."""
    return main([a.replace("+space=v3_small", "+space=v3_large") for a in args(results_dir, lut, *extra)])


LARGE_STUDY = Path("search/v3_large/synthetic-multi")


def rows(folder: Path, name="trials.csv") -> list[dict]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def load(folder: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.log")))
    return optuna.load_study(study_name=folder.name, storage=storage)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("search")


def test_three_trial_study_writes_every_file(results, lut, capsys):
    assert search(results, lut, "n_trials=3") == 0
    folder = results / STUDY
    for name in ("study.log", "trials.csv", "pareto.csv", "pareto.png", "hypervolume.csv"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert not list(folder.glob(".*.tmp"))
    trials = rows(folder)
    assert list(trials[0]) == ["number", "state", "arch", "top1", "top1_per_seed", "test_top1", "latency_ms",
                               "latency_raw_ms", "macs", "params", "reference", "duration_s", "cpu_s", "device",
                               "failure"]
    assert all(r["top1_per_seed"] == f"{float(r['top1']):g}" for r in trials if r["state"] == "COMPLETE")
    assert all(r["device"] == "cpu" for r in trials)  # where each trial trained
    assert all(r["latency_raw_ms"] == "" for r in trials)  # predicted: there is no figure as timed
    assert all(float(r["cpu_s"]) > 0 for r in trials)  # CPU seconds beside the wall seconds
    assert all(0 <= float(r["test_top1"]) <= 1 for r in trials)
    assert [r["state"] for r in trials] == ["COMPLETE"] * 3
    assert trials[0]["reference"] == "v3_small" and not trials[1]["reference"]
    assert int(trials[0]["params"]) == 2_542_856  # the reference, counted with 1000 classes
    front = rows(folder, "pareto.csv")
    assert 1 <= len(front) <= 3 and {r["number"] for r in front} <= {r["number"] for r in trials}
    assert len(rows(folder, "hypervolume.csv")) == 3
    assert (folder / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    study = load(folder)
    assert study.metric_names == ["top1", "latency_ms", "macs"]
    assert study.user_attrs["settings"]["space"] == "v3_small"
    t0 = study.trials[0]
    assert t0.values == [float(t0.user_attrs["top1"]), t0.user_attrs["latency_ms"], float(t0.user_attrs["macs"])]
    out = capsys.readouterr().out
    assert "3 finished trials" in out and str(folder) in out
    # The other reference, once, beside the three trials (not one of them).
    assert out.count("evaluated reference v3_large") == 1
    assert list(study.user_attrs["companions"]) == ["v3_large"]
    assert [(r["name"], r["trial"]) for r in rows(folder, "references.csv")] == [("v3_small", "0"), ("v3_large", "")]


def test_plot_draws_every_front_and_netadapt_trajectories(results, capsys):
    from search.plot import main as plot_main
    from search.plot import overview_info

    run = results / "netadapt" / "run1"
    run.mkdir(parents=True)
    run.joinpath("history.jsonl").write_text(
        '{"iteration": 0, "arch": "a", "latency_ms": 1.3, "macs": 3000000, "top1": 0.5, "proposals": 4}\n'
        '{"iteration": 1, "arch": "b", "latency_ms": 1.1, "macs": 2500000, "top1": 0.45, "proposals": 4}\n{"iter')
    info = overview_info(results)
    assert [label for label, _ in info.fronts] == ["v3_small/synthetic-multi"]
    assert info.fronts[0][1].reference[0] == "v3_small"
    assert info.trajectories[0].latency_ms == (1.3, 1.1) and info.trajectories[0].top1 == (0.5, 0.45)
    # measured differently (no protocol recorded): a row of panels apart from the study's, saying so
    study_group, other = info.groups
    assert study_group.protocol == ("top-1 on synthetic holdout (32 images), 32 px; train: batch_size 32, lr 0.1, "
                                    "schedule cosine, steps 1")
    assert other.protocol.startswith("accuracy protocol not recorded") and not other.fronts
    # the same protocol as the study's: drawn on the study's axes
    run2 = results / "netadapt" / "run2"
    run2.mkdir()
    run2.joinpath("history.jsonl").write_text(run.joinpath("history.jsonl").read_text())
    protocol = json.loads((results / STUDY / "protocol.json").read_text())
    run2.joinpath("run.json").write_text(json.dumps({"protocol": protocol}))
    info = overview_info(results)
    assert [len(g.trajectories) for g in info.groups] == [1, 1] and info.groups[0].trajectories[0].label == "run2"
    assert plot_main([f"results_dir={results}", "studies=[synthetic-multi]"]) == 0
    out = results / "plots" / "fronts.png"
    assert out.read_bytes()[:4] == b"\x89PNG" and str(out) in capsys.readouterr().out
    from core.cli import UsageError

    with pytest.raises(UsageError, match="no study 'nope'"):
        plot_main([f"results_dir={results}", "studies=[nope]"])


def test_rerun_resumes_without_repeating(results, lut, capsys):
    folder = results / STUDY
    before = rows(folder)
    companion = load(folder).user_attrs["companions"]["v3_large"]
    assert search(results, lut, "n_trials=3") == 0  # budget met: nothing runs
    assert rows(folder) == before
    assert search(results, lut, "n_trials=4") == 0  # one more, the first three untouched
    after = rows(folder)
    assert after[:3] == before and len(after) == 4 and after[3]["state"] == "COMPLETE"
    assert len({r["arch"] for r in after}) == 4
    # The other reference is never evaluated again (its result names the first run's worker).
    assert "evaluated reference" not in capsys.readouterr().out
    assert load(folder).user_attrs["companions"]["v3_large"] == companion


def test_dead_workers_trial_is_failed_and_redone(results, lut):
    folder = results / STUDY
    study = load(folder)
    ghost = study.ask()  # a worker that died mid-trial: RUNNING, and its lock is gone
    from space import load_space

    load_space("v3_small").suggest(ghost)
    ghost.set_user_attr("worker", "ghost-host-1-abc")
    assert search(results, lut, "n_trials=5") == 0
    by_number = {int(r["number"]): r for r in rows(folder)}
    assert by_number[4]["state"] == "FAIL"
    assert by_number[4]["failure"] == "its worker died; redone as trial 5"
    assert by_number[5]["state"] == "COMPLETE"
    assert load(folder).trials[5].params == ghost.params
    assert sum(r["state"] == "COMPLETE" for r in by_number.values()) == 5


def test_v3_large_study_marks_v3_small_evaluated_as_a_trial_would_be(results, lut, tmp_path, capsys):
    if not (results / STUDY / "trials.csv").is_file():  # run alone: the first test's study is not there yet
        assert search(results, lut, "n_trials=3") == 0
    # V3-Small as a trial: the reference trial of the v3_small study, same data, training and table.
    as_trial = next(r for r in rows(results / STUDY) if r["reference"] == "v3_small")
    capsys.readouterr()
    assert search_large(tmp_path, lut, "n_trials=1") == 0
    assert capsys.readouterr().out.count("evaluated reference v3_small") == 1
    folder = tmp_path / LARGE_STUDY
    refs = {r["name"]: r for r in rows(folder, "references.csv")}
    assert list(refs) == ["v3_large", "v3_small"] and refs["v3_large"]["trial"] == "0"
    small = refs["v3_small"]
    assert small["trial"] == "" and small["arch"] == format_arch(V3_SMALL) and not small["failure"]
    # Same seeded training, same latency model: the very figures of the trial, not merely plausible ones.
    assert (small["top1"], small["latency_ms"]) == (as_trial["top1"], as_trial["latency_ms"])
    assert int(small["macs"]) == measure.count_macs(V3_SMALL, input_size=32)  # at the latency model's size
    assert int(small["params"]) == 2_542_856
    study = load(folder)
    assert len(study.trials) == 1 and len(rows(folder)) == 1  # not a trial, not counted against n_trials
    # search.plot reads it back from references.csv, as pareto.png got it from the storage.
    from search.plot import overview_info

    ((_, info),) = overview_info(tmp_path).fronts
    assert info.reference[0] == "v3_large"
    assert info.companions == (("v3_small", float(small["top1"]), float(small["latency_ms"]), int(small["macs"])),)
    assert search_large(tmp_path, lut, "n_trials=1") == 0  # resumed with the budget met: nothing evaluated
    assert "evaluated reference" not in capsys.readouterr().out
    assert load(folder).user_attrs["companions"] == study.user_attrs["companions"]


def test_companions_off_then_a_killed_evaluation_is_redone(lut, tmp_path, capsys, monkeypatch):
    folder = tmp_path / LARGE_STUDY
    assert search_large(tmp_path, lut, "n_trials=1", "companions=false") == 0
    assert "companions" not in load(folder).user_attrs
    assert [r["name"] for r in rows(folder, "references.csv")] == ["v3_large"]
    assert "evaluated reference" not in capsys.readouterr().out

    def interrupted(*a, **k):
        raise KeyboardInterrupt  # as a kill would, mid-training: nothing of it may be kept

    monkeypatch.setattr("train.estimator.fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search_large(tmp_path, lut, "n_trials=1")  # companions on (the default) for this study now
    assert "companions" not in load(folder).user_attrs
    monkeypatch.undo()
    assert search_large(tmp_path, lut, "n_trials=1") == 0
    assert capsys.readouterr().out.count("evaluated reference v3_small") == 1
    assert list(load(folder).user_attrs["companions"]) == ["v3_small"]
    assert [r["name"] for r in rows(folder, "references.csv")] == ["v3_large", "v3_small"]


def test_two_workers_evaluating_the_other_reference_keep_one_result(lut, tmp_path, capsys, monkeypatch):
    from search.objective import Objective

    evaluate = Objective.evaluate
    folder = tmp_path / LARGE_STUDY

    def racing(self, arch, label):
        result = evaluate(self, arch, label)
        # Another worker finishes the same evaluation first.
        load(folder).set_user_attr("companions", {"v3_small": {**result, "name": "v3_small", "worker": "other"}})
        return result

    monkeypatch.setattr(Objective, "evaluate", racing)
    assert search_large(tmp_path, lut, "n_trials=1") == 0
    assert "(another worker's result is kept)" in capsys.readouterr().out
    kept = load(folder).user_attrs["companions"]
    assert list(kept) == ["v3_small"] and kept["v3_small"]["worker"] == "other"
    assert [r["name"] for r in rows(folder, "references.csv")] == ["v3_large", "v3_small"]


def test_a_table_without_the_other_reference_skips_it_and_goes_on(lut, tmp_path, capsys):
    import json

    from measure.entries import arch_entries

    # A worker's table built for the v3_large space: V3-Small's own entries are missing.
    data = json.loads(lut.read_text())
    for key in {e.key for e in arch_entries(V3_SMALL, 32)} - {e.key for e in arch_entries(V3_LARGE, 32)}:
        del data["entries"][key]
    table = tmp_path / "v3_large-only.json"
    table.write_text(json.dumps(data))
    assert search_large(tmp_path, lut, "n_trials=1", f"latency.table={table}", "latency.measure_missing=false") == 0
    out = capsys.readouterr().out
    assert out.count("reference v3_small not evaluated by this worker") == 1 and "lacks entry" in out
    folder = tmp_path / LARGE_STUDY
    assert "companions" not in load(folder).user_attrs and json.loads(table.read_text()) == data  # nothing measured
    assert search_large(tmp_path, lut, "n_trials=1") == 0  # a worker whose table can cost it does it
    assert list(load(folder).user_attrs["companions"]) == ["v3_small"]


def test_a_study_whose_latency_table_changed_exits_2_unless_accepted(lut, tmp_path, capsys):
    from core.cli import run

    table = tmp_path / "copy.json"  # of the module's table when earlier tests filled it, else a new one
    if lut.is_file():
        table.write_text(lut.read_text())
    base = ["n_trials=1", "companions=false", f"latency.table={table}"]
    assert search(tmp_path, lut, *base) == 0
    record = load(tmp_path / STUDY).user_attrs["settings"]["latency"]
    assert record["table"] == str(table) and record["source"] == "lut" and len(record["hash"]) == 16
    assert record["calibration"]["model"] == 8 and record["reference"]["ms"] > 0
    data = json.loads(table.read_text())
    data["calibration"]["call_weight"] += 0.5  # refitted since (as if by another calibration)
    table.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as e:
        run(main, args(tmp_path, lut, *base))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert "latency table of study synthetic-multi changed since it started (hash " in err[0]
    assert "calibration call_weight" in err[0] and "latency.accept_changed=true" in err[0]
    assert search(tmp_path, lut, *base, "latency.accept_changed=true") == 0
    study = load(tmp_path / STUDY)
    assert study.user_attrs["latency_history"] == [record]
    assert study.user_attrs["settings"]["latency"]["hash"] != record["hash"]
    assert search(tmp_path, lut, *base) == 0  # accepted once: bound to the new table now


def test_same_seed_gives_same_trials(results, lut, tmp_path):
    assert search(tmp_path, lut, "n_trials=3") == 0  # a fresh study, same seed as the first test's
    first = [r["arch"] for r in rows(results / STUDY)][:3]
    assert [r["arch"] for r in rows(tmp_path / STUDY)] == first


def test_diverging_trial_fails_cleanly_and_study_goes_on(tmp_path, lut, capsys):
    assert search(tmp_path, lut, "n_trials=2", "train.lr=1e30", "train.steps=3") == 0
    trials = rows(tmp_path / STUDY)
    assert [r["state"] for r in trials] == ["FAIL", "FAIL"]  # the second ran after the first failed
    assert all("loss became" in r["failure"] for r in trials)
    assert rows(tmp_path / STUDY, "pareto.csv") == []
    (other,) = rows(tmp_path / STUDY, "references.csv")  # diverged too: kept as a result, not retried
    assert other["name"] == "v3_large" and other["top1"] == "" and "loss became" in other["failure"]


def test_constraints_mnas_and_sqlite_storage(tmp_path, lut):
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    assert search(tmp_path, lut, "n_trials=2", "max_latency_ms=0.001", f"storage={db}", "objective=mnas") == 0
    folder = tmp_path / "search/v3_small/synthetic-mnas"
    assert [r["state"] for r in rows(folder)] == ["COMPLETE", "COMPLETE"]
    assert rows(folder, "pareto.csv") == []  # nothing meets 1 microsecond
    study = optuna.load_study(study_name="synthetic-mnas", storage=db)
    t = study.trials[0]
    assert t.system_attrs["constraints:latency_ms"] > 0
    ref_ms = study.user_attrs["hv_ref"]["latency_ms"]
    assert t.value == pytest.approx(t.user_attrs["top1"] * (t.user_attrs["latency_ms"] / ref_ms) ** -0.07)


# -- bad input: one line on stderr, exit status 2 ----------------------------------------------------
@pytest.mark.parametrize("args,words", [
    ([], "no space given"),
    (["+space=v3_tiny"], "unknown space 'v3_tiny'"),
    (["+space=v3_small", "sampler=annealing"], "unknown sampler 'annealing'"),
    (["+space=v3_small", "storage=postgresql://bneck:secret@127.0.0.1:9/none"], "cannot open storage"),
])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, args, words):
    # As a user runs it: a subprocess, so exit status and stderr are the real ones.
    p = cli("search.run", *args, "data=synthetic", "latency=measured", f"results_dir={tmp_path}", timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], p.stderr
    assert "secret" not in p.stderr


@pytest.mark.parametrize("extra,message", [
    (["storage=nosuch://x/y"], "storage=nosuch://x/y: unknown scheme 'nosuch'"),
    (["n_trials=0"], "n_trials=0 must be an integer >= 1: pass e.g. n_trials=30"),
    (["objective=best"], "unknown objective 'best': use one of multi, mnas (e.g. objective=multi)"),
    (["max_macs=-1"], "max_macs=-1 must be null or a number > 0"),
    (["train.lr=x"], "train.lr=x must be a number > 0: pass e.g. train.lr=0.1"),
    (["no_such_key=1"], "bad override"),
    (["study_name=../x"], "study_name=../x must be letters, digits and . _ = + -"),
    (["n_trials=5", "train.steps=2"], "study synthetic-multi was run with train.steps=1, not 2: use the same "
                                      "settings or pass another study_name"),
])
def test_bad_settings_exit_2_in_process(results, lut, capsys, extra, message):
    # The same contract through core.cli.run, without a new interpreter per case.
    from core.cli import run

    with pytest.raises(SystemExit) as e:
        run(main, args(results, lut, *extra))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_two_workers_enqueuing_the_reference_at_once_run_it_once(lut, tmp_path, monkeypatch):
    """Workers joining a new study together can both find no reference trial and both enqueue one
    (the storages have no compare-and-set): the later copy is pruned, not run or counted."""
    from search.study import Search

    bind = Search._bind

    def racing(self, study):
        bind(self, study)
        # The other worker checked before this one's enqueue landed, and enqueues its own.
        study.enqueue_trial(self.space.params_of(self.space.reference), user_attrs={"reference": "v3_small"})

    monkeypatch.setattr(Search, "_bind", racing)
    assert search(tmp_path, lut, "n_trials=2") == 0
    by_number = {int(r["number"]): r for r in rows(tmp_path / STUDY)}
    assert by_number[0]["reference"] == "v3_small" and by_number[0]["state"] == "COMPLETE"
    assert by_number[1]["state"] == "PRUNED"
    assert by_number[1]["failure"] == "duplicate: the reference is trial 0"
    complete = [r for r in by_number.values() if r["state"] == "COMPLETE"]
    assert len(complete) == 2 and sum(bool(r["reference"]) for r in complete) == 1
