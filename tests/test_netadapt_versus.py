"""The sweep's arithmetic (benchmarks/netadapt_vs_multiplier/netadapt_vs_multiplier.py): differences at equal measured latency and
latency ratios at equal accuracy, on hand-made results."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from plots import draw_versus

_spec = importlib.util.spec_from_file_location(
    "netadapt_vs_multiplier", Path(__file__).resolve().parent.parent / "benchmarks" / "netadapt_vs_multiplier" / "netadapt_vs_multiplier.py")
versus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(versus)


def row(seed, budget, na_ms, na_acc, m_ms, m_acc, start="v3_small"):
    return {"start": start, "budget": budget, "seed": seed,
            "netadapt": {"measured_ms": na_ms, "test_top1": na_acc},
            "multiplier": {"measured_ms": m_ms, "test_top1": m_acc}}


def test_interpolation_and_latency_at_accuracy():
    xs, ys = [1.0, 2.0, 3.0], [0.90, 0.95, 0.96]
    assert versus.interp(1.5, xs, ys) == pytest.approx(0.925)
    assert versus.interp(0.5, xs, ys) == 0.90 and versus.interp(9, xs, ys) == 0.96  # nearest point outside
    assert versus.latency_at(0.925, xs, ys) == pytest.approx(1.5)
    assert versus.latency_at(0.80, xs, ys) == 1.0 and versus.latency_at(0.99, xs, ys) is None


def test_summary_pairs_each_seed_with_its_own_multiplier_curve():
    # Seed 0: multiplier (1, .90) (2, .95); NetAdapt at 1.5 ms reaches .95 -> +2.5 points, ratio 2/1.5.
    # Seed 1: the same shifted down by 1 point in both methods -> the same differences.
    rows = []
    for seed, shift in ((0, 0.0), (1, -0.01)):
        rows += [row(seed, 0.9, 1.5, 0.95 + shift, 2.0, 0.95 + shift), row(seed, 0.6, 0.8, 0.90 + shift, 1.0, 0.90 + shift)]
    table, info = versus.summarise(rows)
    at = {r["budget"]: r for r in table}
    d, half = at[0.9]["diff"]
    assert d == pytest.approx(0.025) and half == pytest.approx(0.0, abs=1e-12)
    assert at[0.9]["ratio"][0] == pytest.approx(2.0 / 1.5)
    assert at[0.6]["diff"][0] == pytest.approx(0.0) and at[0.6]["ratio"][0] == pytest.approx(1.0 / 0.8)
    (start, curves), = info.panels
    assert start == "v3_small" and [c.label for c in curves] == ["NetAdapt", "width multiplier"]
    assert curves[0].latency_ms == (1.5, 0.8) and curves[1].top1 == pytest.approx((0.945, 0.895))
    assert draw_versus(info)[:4] == b"\x89PNG"


def test_runs_timed_at_different_speeds_compare_through_their_start_network():
    # Seed 1 ran on a machine 2x slower: every network, its start too, timed twice as long.
    fast = [row(0, 0.9, 1.5, 0.95, 2.0, 0.95), row(0, 0.6, 0.8, 0.90, 1.0, 0.90)]
    slow = [row(1, 0.9, 3.0, 0.95, 4.0, 0.95), row(1, 0.6, 1.6, 0.90, 2.0, 0.90)]
    for r in fast:
        r["start_measured_ms"] = 2.0
    for r in slow:
        r["start_measured_ms"] = 4.0
    table, info = versus.summarise(fast + slow)
    at = {r["budget"]: r for r in table}
    # the median start timing (3.0 ms) is the common unit: both seeds land on the same latencies
    assert at[0.9]["netadapt"][0] == pytest.approx((2.25, 0.0)) and at[0.6]["multiplier"][0] == pytest.approx((1.5, 0.0))
    assert at[0.9]["diff"][0] == pytest.approx(0.025) and at[0.9]["ratio"][0] == pytest.approx(2.0 / 1.5)
    # without the start's timing a row is kept as timed
    assert versus._at_common_speed(row(0, 0.9, 1.5, 0.95, 2.0, 0.95), fast)["netadapt"]["measured_ms"] == 1.5


def test_overrides_after_the_starts_are_overrides_not_starts():
    args, over = versus.parse(["data.x=2", "--starts", "v3_small", "threads=1", "results_dir=/r", "--seeds", "0"])
    assert args.starts == ["v3_small"] and args.seeds == [0]
    assert over == ["data.x=2", "threads=1", "results_dir=/r"]
    args, over = versus.parse([])
    assert args.starts == ["v3_small", "v3_large"] and args.budgets == [0.9, 0.75, 0.6] and over == []


def test_retimed_rounds_give_each_network_its_median_fraction_of_the_start():
    start = versus.START_ARCH["v3_small"]
    r = row(0, 0.9, 9.9, 0.95, 9.9, 0.94)
    r["netadapt"]["arch"], r["multiplier"]["arch"] = "na", "mult"
    r["start_measured_ms"] = 3.0
    # the machine's speed changes from round to round; each network's fraction of the start does not
    rounds = [{"start": "v3_small", "ms": {start: 2.0 * f, "na": 1.6 * f, "mult": 1.5 * f}} for f in (1.0, 1.5, 1.0)]
    got = versus._retimed(r, rounds)
    assert got["netadapt"]["measured_ms"] == pytest.approx(0.8 * 2.0) and got["netadapt"]["rounds"] == 3
    assert got["multiplier"]["measured_ms"] == pytest.approx(0.75 * 2.0)
    assert versus._retimed(r, [{"start": "v3_large", "ms": rounds[0]["ms"]}]) is None  # no round of its start
    assert versus._retimed(r, [{"start": "v3_small", "ms": {start: 2.0, "na": 1.6}}]) is None  # baseline not timed
    table, _ = versus.summarise([r], rounds)
    assert table[0]["netadapt"][0][0] == pytest.approx(1.6)


def test_retime_times_every_network_of_a_start_per_round_and_resumes(tmp_path):
    from space import V3_SMALL, format_arch, scale_width

    r = row(0, 0.9, 1.0, 0.95, 1.0, 0.94)
    r["netadapt"]["arch"] = format_arch(scale_width(V3_SMALL, 0.5))
    r["multiplier"]["arch"] = format_arch(scale_width(V3_SMALL, 0.75))
    over = [f"results_dir={tmp_path}", f"latency.table={tmp_path / 'lut.json'}", "latency.input_size=32",
            "latency.repeats=5", "latency.warmup=1", "latency.passes=1", "latency.max_rounds=1", "threads=1"]
    path = tmp_path / "timing.jsonl"
    versus.retime([r], over, 1, path)
    versus.retime([r], over, 2, path)  # resumes: one more round
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [q["round"] for q in lines] == [0, 1]
    assert set(lines[0]["ms"]) == {versus.START_ARCH["v3_small"], r["netadapt"]["arch"], r["multiplier"]["arch"]}
    assert all(v > 0 for q in lines for v in q["ms"].values())
    versus.retime([r], over, 2, path)  # done: nothing timed again
    assert len(path.read_text().splitlines()) == 2
    got = versus._retimed(r, lines)
    assert got["netadapt"]["rounds"] == 2 and got["netadapt"]["measured_ms"] > 0


def test_the_report_names_each_budgets_step(tmp_path):
    # V3-Large runs at a coarser step than V3-Small (cost); the table says which step each row used
    rows = [dict(row(0, 0.9, 1.5, 0.95, 2.0, 0.95), step=0.01), dict(row(0, 0.6, 0.8, 0.90, 1.0, 0.90), step=0.01),
            dict(row(0, 0.9, 1.5, 0.95, 2.0, 0.95, start="v3_large"), step=0.025),
            dict(row(0, 0.6, 0.8, 0.90, 1.0, 0.90, start="v3_large"), step=0.025)]
    rows.append(dict(row(1, 0.9, 1.5, 0.95, 2.0, 0.95, start="v3_large")))  # a row from before steps were recorded
    text = versus.write(rows, tmp_path, [])
    lines = [x for x in text.splitlines() if x.startswith("| v3_")]
    assert [x.split(" | ")[:4] for x in lines] == [["| v3_large", "0.9", "0.025/?", "2"], ["| v3_large", "0.6", "0.025", "1"],
                                                  ["| v3_small", "0.9", "0.01", "1"], ["| v3_small", "0.6", "0.01", "1"]]
    assert (tmp_path / "netadapt_vs_multiplier.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_says_per_start_whether_its_latencies_were_retimed(tmp_path):
    # V3-Small retimed, V3-Large not yet: the header must not claim --retime for both
    start = versus.START_ARCH["v3_small"]
    small = row(0, 0.9, 9.9, 0.95, 9.9, 0.94)
    small["netadapt"]["arch"], small["multiplier"]["arch"] = "na", "mult"
    large = row(0, 0.9, 5.0, 0.95, 5.0, 0.96, start="v3_large")
    rounds = [{"start": "v3_small", "round": k, "ms": {start: 2.0, "na": 1.6, "mult": 1.5}} for k in range(3)]
    text = versus.write([small, large], tmp_path, [], rounds)
    assert ("Here v3_large: from the runs' own timings (not retimed); v3_small: from `--retime` (3 rounds of every "
            "network, `netadapt_vs_multiplier_timing.jsonl`).") in text
    # both diffs and V3-Large's ratio (V3-Small's multiplier never reaches 95%)
    assert "nan" not in text and text.count("(one seed: no interval)") == 3
