"""measure.noise (``python -m measure.lut noise``): whether the host can time a table to ±5% now."""
from __future__ import annotations

import re

import pytest

from measure import noise


def test_windows_separate_a_whole_machine_drift_from_a_relative_one():
    # the machine slows down 30% as a whole half-way: each p10 moves, their ratio does not
    rows = noise.windows([10.0] * 20 + [13.0] * 20, [4.0] * 20 + [5.2] * 20, 20)
    assert [round(r["ratio"], 6) for r in rows] == [0.4, 0.4]
    s = noise.summarize(rows)
    assert s["large_spread"] == pytest.approx(3.0 / 11.5) and s["ratio_spread"] == pytest.approx(0, abs=1e-12)
    assert s["ratio_within_5"] == 1
    # the small network alone slows by 10% in the last window: a probe cannot correct that
    s = noise.summarize(noise.windows([10.0] * 60, [4.0] * 40 + [4.4] * 20, 20))
    assert s["ratio_spread"] == pytest.approx(0.1) and s["ratio_within_5"] == pytest.approx(2 / 3)
    assert len(noise.windows([1.0] * 39, [1.0] * 39, 20)) == 1  # a partial window is dropped
    assert noise.summarize(noise.windows([1.0] * 19, [1.0] * 19, 20))["windows"] == 0  # nothing measured


def _record(within: float, windows: int = 30) -> dict:
    return {"backend": "onnxruntime", "seconds": 60.0, "window": 20, "pairs": 20 * windows, "load_before": 1.0,
            "windows": windows, "large_spread": 0.08, "ratio_spread": 0.06, "ratio_within_5": within}


def test_the_verdict_turns_at_eighty_percent_of_windows():
    assert noise.quiet(_record(0.80)) and not noise.quiet(_record(0.79))
    assert noise.verdict(_record(0.9)).endswith("quiet enough to build and validate a table to ±5%")
    loud = noise.verdict(_record(0.5))
    assert "within ±5% in 50% of windows" in loud and "too noisy" in loud and "taskset" in loud
    short = noise.verdict({**_record(float("nan"), 0), "pairs": 7})
    assert "only 7 pairs" in short and "seconds=" in short and not noise.quiet({**_record(1.0), "windows": 0})


def test_the_sweep_samples_the_same_blocks_everywhere_and_counts_those_a_build_would_time_again():
    keys = [e.key for e in noise.sweep_entries()]
    assert len(keys) == len(set(keys)) == noise.SWEEP_BLOCKS and all(k.startswith("block_r") for k in keys)
    assert keys[0] == "block_r112_i16_k3_e16_o16_s1_se0_RE" and keys == [e.key for e in noise.sweep_entries()]
    assert len({e.key for e in noise.sweep_entries(n=4)}) == 4
    # a build's test: the two fastest of an entry's timings within 3% of each other, else timed again
    assert noise.retimed({"a": [1.0, 1.03], "b": [1.0, 1.031], "c": [1.2, 1.0, 1.01], "d": [1.1, 1.0]}) == 2


def test_a_steady_machine_sweeps_quiet_and_one_that_jumps_between_speeds_does_not():
    steady = noise.sweep(n=8, time_entry=lambda e: 1.0)
    assert (steady["sweep_blocks"], steady["sweep_retimed"], steady["sweep_share"]) == (8, 0, 0.0)
    levels = iter([1.0] * 8 + [1.08] * 8)  # the second pass runs 8% slower on every block: each would be timed again
    jumpy = noise.sweep(n=8, time_entry=lambda e: next(levels))
    assert (jumpy["sweep_retimed"], jumpy["sweep_share"]) == (8, 1.0)
    assert noise.quiet({**_record(0.95), **steady}) and not noise.quiet({**_record(0.95), **jumpy})
    busy = noise.verdict({**_record(0.95), **jumpy})
    assert "8 of 8 blocks (100%) timed twice differ by more than 3%" in busy and "over 10% of blocks" in busy
    assert "the ratio holds" not in busy and "too noisy" in busy
    for slower, busy in ((1, False), (2, True)):  # 1 of 10 blocks 5% slower in its second pass: 10%, not over
        levels = iter([1.0] * 10 + [1.05] * slower + [1.0] * (10 - slower))
        found = noise.sweep(n=10, time_entry=lambda e, levels=levels: next(levels))
        assert (found["sweep_retimed"], found["sweep_busy"]) == (slower, busy)
        assert noise.quiet({**_record(0.95), **found}) is not busy


def test_the_command_times_the_host_and_says_what_it_found(cli):
    done = cli("measure.lut", "noise", "seconds=3", "sweep_blocks=4")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert re.match(r"host noise \(onnxruntime, 3 s, \d+ windows of 20 pairs, load [\d.]+\): the machine's speed "
                    r"moved [\d.]+%; the V3-Small/V3-Large ratio is within ±5% in \d+% of windows \(spread [\d.]+%\); "
                    r"\d of 4 blocks \(\d+%\) timed twice differ by more than 3%", line), line
    assert line.endswith(("to ±5%", "check again"))
    skipped = cli("measure.lut", "noise", "seconds=1", "sweep_blocks=0")
    assert skipped.returncode == 0 and "blocks" not in skipped.stdout


def test_the_command_refuses_a_bad_duration(cli):
    done = cli("measure.lut", "noise", "seconds=0")
    assert done.returncode == 2 and "seconds" in done.stderr and "Traceback" not in done.stderr
