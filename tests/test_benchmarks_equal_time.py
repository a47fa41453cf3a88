"""benchmarks/search_equal_time/search_equal_time.py: which trials fit the wall time, and the comparison at equal latency."""
from __future__ import annotations

import pytest

from core.errors import UserError


@pytest.fixture(scope="module")
def et(load_benchmark):
    return load_benchmark("search_equal_time")


def row(number, duration, state="COMPLETE", **kw):
    return {"number": number, "state": state, "cpu_s": duration, "duration_s": 3 * duration, **kw}


def test_trials_count_until_the_first_overruns_the_time(et):
    rows = [row(2, 10.0), row(0, 10.0), row(1, 5.0, state="FAIL"), row(3, 30.0), row(4, 1.0)]
    assert [r["number"] for r in et.within(rows, 25.0)] == [0, 2]  # 3 would end at 50 s; 4 comes after it
    assert [r["number"] for r in et.within(rows, 25.0, spent_s=10.0)] == [0]  # the supernet's training counts
    assert et.within(rows, 5.0) == []


def test_time_is_counted_in_cpu_seconds_and_a_trial_without_them_is_refused(et):
    # wall seconds (here 3x: a loaded machine) do not count; a trial recorded before cpu_s existed is an error
    assert [r["number"] for r in et.within([row(0, 10.0), row(1, 10.0)], 25.0)] == [0, 1]
    with pytest.raises(UserError, match="trial 1 has no cpu_s .* move its study folder aside"):
        et.within([row(0, 10.0), {"number": 1, "state": "COMPLETE", "duration_s": 5.0, "cpu_s": ""}], 25.0)


def test_more_trials_fill_the_time_left_from_the_mean_duration(et):
    assert et.more_trials([row(0, 10.0), row(1, 20.0)], budget_s=100.0, spent_s=10.0) == 4  # 60 s left / 15 s
    assert et.more_trials([], budget_s=100.0, spent_s=40.0, guess_s=15.0) == 4
    assert et.more_trials([row(0, 10.0)], budget_s=100.0, spent_s=95.0) == 0  # overrun: no more
    assert et.more_trials([row(0, 10.0)], budget_s=100.0, spent_s=89.0) == 1


def test_equal_latency_difference_interpolates_the_other_curve_and_skips_points_outside_it(et):
    theirs = [{"latency_ms": 1.0, "test_top1": 0.50}, {"latency_ms": 3.0, "test_top1": 0.70}]
    mine = [{"number": 7, "latency_ms": 2.0, "test_top1": 0.65}, {"number": 8, "latency_ms": 0.5, "test_top1": 0.9},
            {"number": 9, "latency_ms": 3.0, "test_top1": 0.70}]
    d = et.at_equal_latency(mine, theirs)
    assert [x["number"] for x in d] == [7, 9]
    assert d[0]["diff"] == pytest.approx(0.05) and d[1]["diff"] == pytest.approx(0.0)


def test_best_picks_by_holdout_and_data_overrides_reach_the_retraining(et):
    front = [{"number": i, "top1": t} for i, t in enumerate([0.3, 0.9, 0.5, 0.7])]
    assert [r["number"] for r in et.best(front, 3)] == [1, 3, 2]
    assert et.data_overrides(["data.n_train=300", "data.clutter_frac=0.5", "data.input_size=32", "seed=1",
                              "latency=measured"]) == {"n_train": 300, "clutter_frac": 0.5}


def test_picks_come_from_the_latency_range_both_fronts_cover(et):
    fast = [{"number": i, "latency_ms": lat, "top1": t} for i, lat, t in [(0, 1.1, 0.30), (1, 1.3, 0.40),
                                                                          (2, 1.45, 0.45)]]
    slow = [{"number": i, "latency_ms": lat, "top1": t} for i, lat, t in [(5, 1.2, 0.90), (6, 1.4, 0.93),
                                                                          (7, 2.0, 0.95), (8, 1.35, 0.92)]]
    span = et.shared_range([fast, slow])
    assert span == (1.2, 1.45)
    assert [r["number"] for r in et.picks(slow, 2, span)] == [6, 8]  # 7 is the best but slower than any of `fast`
    assert [r["number"] for r in et.picks(fast, 2, span)] == [2, 1]
    assert et.shared_range([fast, [{"latency_ms": 3.0}]]) is None and et.shared_range([fast, []]) is None
    assert [r["number"] for r in et.picks(slow, 1, None)] == [7]


def test_a_bad_override_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "benchmarks.search_equal_time.search_equal_time",
                           "--results-dir", str(tmp_path), "no_such_key=1"], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: bad override: Could not override 'no_such_key'")
    assert not any(tmp_path.iterdir())  # nothing written
