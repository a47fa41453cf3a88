"""benchmarks/netadapt_table_error/netadapt_table_error.py: the table's error along NetAdapt trajectories, on hand-made timings, and
one real run that times, resumes and reports."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from core.errors import UserError


@pytest.fixture(scope="module")
def te(load_benchmark):
    return load_benchmark("netadapt_table_error")


# start S, then two cuts: an expansion cut the table predicts right, a width cut it overstates twice
TRAJ = [{"iteration": 0, "arch": "S", "chosen": "start"},
        {"iteration": 1, "arch": "A", "chosen": "expand[3] 96->72"},
        {"iteration": 2, "arch": "B", "chosen": "width[8,9,10] 96->80"}]
PRED = {"S": 1.0, "A": 0.9, "B": 0.7, "L1": 0.85, "L2": 0.65}


def rounds(ms: dict[str, float], speeds=(1.0, 1.3, 1.0)) -> list[dict]:
    """The machine's speed changes from round to round; fractions of the start do not."""
    return [{"start": "S", "round": k, "ms": {a: v * f for a, v in ms.items()}} for k, f in enumerate(speeds)]


def test_fractions_cuts_and_saving_ratios(te):
    meas = te.measured_fractions(rounds({"S": 2.0, "A": 1.8, "B": 1.6, "L1": 1.6, "L2": 1.2}), "S")
    assert meas == pytest.approx({"S": 1.0, "A": 0.9, "B": 0.8, "L1": 0.8, "L2": 0.6})
    cs = te.cuts(TRAJ, PRED, meas)
    assert [(c["kind"], c["iteration"]) for c in cs] == [("expand", 1), ("width", 2)]
    assert [c["predicted"] for c in cs] == pytest.approx([0.1, 0.2]) and [c["measured"] for c in cs] == pytest.approx(
        [0.1, 0.1])
    assert te.saving_ratio(cs[:1])[0] == pytest.approx(1.0) and te.saving_ratio(cs[1:])[0] == pytest.approx(0.5)
    r, lo, hi = te.saving_ratio(cs)
    assert r == pytest.approx(0.2 / 0.3) and lo == pytest.approx(0.5) and hi == pytest.approx(1.0)
    # where a budget's run stops: the first network predicted at or below the fraction
    assert te.error_at(0.9, TRAJ, PRED, meas) == pytest.approx(1.0)
    assert te.error_at(0.75, TRAJ, PRED, meas) == pytest.approx(0.8 / 0.7)
    assert te.error_at(0.5, TRAJ, PRED, meas) != te.error_at(0.5, TRAJ, PRED, meas)  # nan: never reached
    # the ladder's error, interpolated in predicted fraction: L2 (0.65) 0.923, L1 (0.85) 0.941
    assert te.ladder_error_at(0.75, ["S", "L1", "L2"], PRED, meas) == pytest.approx((0.6 / 0.65 + 0.8 / 0.85) / 2)


def test_report_rows(te):
    meas = {"S": 2.0, "A": 1.8, "B": 1.6, "L1": 1.6, "L2": 1.2}
    text = te.report({"r0": TRAJ, "r1": TRAJ}, ["S", "L1", "L2"], PRED, rounds(meas), "S", budgets=(0.75,))
    assert "| 0.75 | 1.143 [1.143, 1.143] | 0.932 |" in text
    assert "| width | 2 | 0.400 | 0.200 | 0.50 [0.50, 0.50] |" in text
    assert "| all | 4 | 0.600 | 0.400 | 0.67 [" in text


def test_times_every_network_resumes_and_writes_the_report(te, tmp_path):
    from space import V3_SMALL, format_arch, scale_width

    start = scale_width(V3_SMALL, 0.5)
    cut = dataclasses.replace(start, blocks=(*start.blocks[:3], dataclasses.replace(start.blocks[3], expand=24),
                                             *start.blocks[4:]))
    run = tmp_path / "sweep-x-s0"
    run.mkdir()
    run.joinpath("history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"iteration": 0, "arch": format_arch(start), "chosen": "start"},
        {"iteration": 1, "arch": format_arch(cut), "chosen": "expand[3] 48->24"})))
    over = [f"results_dir={tmp_path}", f"latency.table={tmp_path / 'lut.json'}", "latency.input_size=32",
            "latency.repeats=5", "latency.warmup=1", "latency.passes=1", "latency.max_rounds=1"]
    out = tmp_path / "out"
    te.main(["--runs", str(run), "--rounds", "1", "--out", str(out), *over])
    te.main([*over, "--runs", str(run), "--rounds", "2", "--out", str(out), "--entries", "1"])  # one more round
    lines = [json.loads(x) for x in (out / "netadapt_table_error.jsonl").read_text().splitlines()]
    assert [q["round"] for q in lines] == [0, 1]
    # start, its cut and the ladder (x0.5 scaled again; some multipliers round to the same network)
    assert {format_arch(start), format_arch(cut)} <= set(lines[0]["ms"]) and len(lines[0]["ms"]) >= 4
    assert all(v > 0 for q in lines for v in q["ms"].values())
    md = (out / "netadapt_table_error.md").read_text()
    assert md.startswith("# Where the latency table misleads NetAdapt (2 rounds,") and "| expand | 1 |" in md
    # --entries: every part of every network timed afresh, compared with what the table stored
    [fresh] = [json.loads(x) for x in (out / "netadapt_table_error_entries.jsonl").read_text().splitlines()]
    from measure.entries import arch_entries

    new = {e.key for e in arch_entries(cut, 32)} - {e.key for e in arch_entries(start, 32)}
    assert len(new) == 1 and new | {e.key for e in arch_entries(start, 32)} <= set(fresh["ms"])
    assert "| of the start network | " in md and "| added by cuts and ladder | " in md
    assert "calibration set (2 networks timed end to end)" in md
    # a reading written by hand under the report survives the next rewrite
    (out / "netadapt_table_error.md").write_text(md + "\n## Reading\nby hand\n")
    te.main([*over, "--runs", str(run), "--rounds", "2", "--out", str(out)])
    assert (out / "netadapt_table_error.md").read_text().endswith("\n## Reading\nby hand\n")


def test_entry_report_groups_and_worst_entries(te):
    stored = {"s1": 1.0, "s2": 2.0, "n1": 1.5, "n2": 0.5}
    rounds = [{"round": 0, "ms": {"s1": 1.0, "s2": 2.0, "n1": 1.0, "n2": 0.5}},
              {"round": 1, "ms": {"s1": 1.0, "s2": 2.0, "n1": 1.0, "n2": 1.0}},
              {"round": 2, "ms": {"s1": 1.0, "s2": 2.0, "n1": 1.0, "n2": 1.0}}]
    text = te.entry_report(stored, rounds, {"s1", "s2"})
    assert "| of the start network | 2 | 1.00 | 1.00-1.00 | 0% | 1.00 |" in text
    assert "| added by cuts and ladder | 2 | 1.00 | " in text and "| 100% | 1.50 |" in text  # n1 1.5x, n2 0.5x
    assert text.index("`n1`") < text.index("`s1`") and "| `n2` | 0.500 | 1.000 | 0.50 |" in text


def test_dispersion_between_tables_from_disjoint_rounds(te):
    # entry a: rounds 1, 1, 2, 2 ms; b is always 1 ms
    rounds = [{"ms": {"a": v, "b": 1.0}} for v in (1.0, 1.0, 2.0, 2.0)]
    # single rounds: 12 ordered pairs, 8 of them 1 vs 2 -> median over entries |log 2| / 2 there, else 0
    med, p90 = te.dispersion(rounds, 1)
    assert med == pytest.approx(8 / 12 * math.log(2) / 2) and p90 == pytest.approx(8 / 12 * math.log(2))
    # fastest of two rounds: any set holding a 1 ms round keeps 1 ms; {2, 2} vs {1, 1} disagree
    med2, _ = te.dispersion(rounds, 2)
    assert med2 == pytest.approx(2 / 6 * math.log(2) / 2)
    assert te.dispersion(rounds, 3) is None


def test_runs_from_different_starts_are_refused(te, tmp_path):
    for name, arch in (("a", "stem16 k3_e16_c16_re last576 head1024 drop0.2"),
                       ("b", "stem8 k3_e16_c16_re last576 head1024 drop0.2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.jsonl").write_text(json.dumps({"iteration": 0, "arch": arch, "chosen": "start"}))
    with pytest.raises(UserError, match="different networks"):
        te.main(["--runs", str(tmp_path / "a"), str(tmp_path / "b")])
