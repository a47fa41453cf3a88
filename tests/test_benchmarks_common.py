"""benchmarks/common.py: the results files, the rewritten reports and the formats the benchmark scripts share."""
from __future__ import annotations

import math

from benchmarks.common import (
    append_jsonl,
    bracket,
    na,
    read_jsonl,
    split_overrides,
    timed_rounds,
    write_report,
)


def test_lines_append_and_read_back_and_a_cut_line_is_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    assert read_jsonl(path) == []  # no file yet: nothing done
    append_jsonl(path, {"a": 1})
    append_jsonl(path, {"b": [2, 3]})
    assert path.read_text() == '{"a": 1}\n{"b": [2, 3]}\n'
    with path.open("a") as f:
        f.write('\n{"c": "cut by a ki')  # a blank line, then a run killed mid-write
    assert read_jsonl(path) == [{"a": 1}, {"b": [2, 3]}]


def test_a_rewritten_report_keeps_the_reading_written_under_the_old_one(tmp_path):
    md = tmp_path / "r.md"
    assert write_report(md, "# New\n") == "# New\n" and md.read_text() == "# New\n"  # no old file
    md.write_text("# Old\n| 1 |\n\n## Reading\nA person's words.\n")
    assert write_report(md, "# New\n| 2 |\n") == "# New\n| 2 |\n\n## Reading\nA person's words.\n"
    assert md.read_text() == "# New\n| 2 |\n\n## Reading\nA person's words.\n"


def test_figures_print_n_a_when_missing_and_intervals_as_mean_lo_hi():
    assert [na(None), na(math.nan), na(0.25), na(3.14159, ".2f"), na(7, "d")] == ["n/a", "n/a", "0.2", "3.14", "7"]
    assert bracket(1.5, 0.25, ".2f") == "1.50 [1.25, 1.75]"
    assert bracket(0.1, 0.3, "+.1f", " (one seed)") == "+0.1 [-0.2, +0.4]"
    assert bracket(0.1, math.nan, "+.1f", " (one seed)") == "+0.1 (one seed)"
    assert bracket(0.1, math.nan, ".1f") == "0.1 [nan, nan]"  # no text for one seed: the interval says nan


def test_overrides_swallowed_by_a_list_option_are_given_back():
    assert split_overrides(["v3_small", "step=0.025", "v3_large"], ["seed=1"]) == (
        ["v3_small", "v3_large"], ["seed=1", "step=0.025"])


def test_timing_rounds_resume_per_tag_and_add_only_the_missing_ones(tmp_path):
    path, calls = tmp_path / "t.jsonl", []

    def time_once(bar):
        calls.append(1)
        return {"x": 1.0 * len(calls), "y": 2.123456789}

    done = timed_rounds(path, 2, {"start": "s"}, {"x", "y"}, time_once, per_round=2)
    assert done == [{"start": "s", "round": 0, "ms": {"x": 1.0, "y": 2.12346}},
                    {"start": "s", "round": 1, "ms": {"x": 2.0, "y": 2.12346}}]
    assert len(timed_rounds(path, 3, {"start": "s"}, {"x", "y"}, time_once, per_round=2)) == 3 and len(calls) == 3
    # another tag, or a round missing a key, is not this tag's: its rounds are timed anew
    assert [q["round"] for q in timed_rounds(path, 1, {"start": "t"}, {"x"}, time_once, 1)] == [0]
    assert len(timed_rounds(path, 1, {"start": "s"}, {"x", "z"}, time_once, 1)) == 1 and len(calls) == 5
    assert read_jsonl(path)[-1] == {"start": "s", "round": 0, "ms": {"x": 5.0, "y": 2.12346}}
