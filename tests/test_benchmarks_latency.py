"""benchmarks/latency_lut/latency_lut.py: the validation sets it times (no timing here)."""
from __future__ import annotations

import importlib
import json

import pytest

from measure import count_macs
from netadapt.groups import same_structure
from space import V3_LARGE, V3_SMALL, build_model, format_arch, scale_width


@pytest.fixture(scope="module")
def ll(load_benchmark):
    return load_benchmark("latency_lut")


def test_netadapt_shaped_networks_are_seeded_nonuniform_shrinks_of_the_references(ll):
    nets = ll.netadapt_shaped()
    assert [format_arch(a) for _, a in nets] == [format_arch(a) for _, a in ll.netadapt_shaped()]
    assert len(nets) == 10 and {s for s, _ in nets} == {"netadapt-shaped"}
    for i, (_, arch) in enumerate(nets):
        start = V3_SMALL if i < 5 else V3_LARGE
        assert same_structure(start, arch)  # NetAdapt never changes structure, only widths
        ratio = count_macs(arch, 224) / count_macs(start, 224)
        assert 0.4 < ratio <= 0.9
        uniform = {format_arch(scale_width(start, m / 100)) for m in range(25, 100)}
        assert format_arch(arch) not in uniform
    build_model(nets[0][1])  # builds


def test_sets_cover_every_space_the_references_and_netadapt_shapes(ll):
    sets = ll.sets(3)
    assert set(sets) == {"random v3_large", "random v3_small", "references", "netadapt-shaped"}
    assert [len(v) for v in sets.values()] == [3, 3, 10, 10]


def test_report_renders_shares_and_run_to_run_spread_from_the_json_lines(ll, tmp_path):
    def row(pred, meas, raw):
        return {"arch": "x", "predicted_ms": pred, "measured_ms": meas, "error": (pred - meas) / meas,
                "measured_raw_ms": raw, "set": "references"}

    path = tmp_path / "r.jsonl"
    ll.append_jsonl(path, {"backend": "onnxruntime", "kind": "table", "name": "t.json", "build_s": 12.0, "scale": 1.1,
                     "overhead_ms": 0.2, "reference_ms": 8.0, "probe_spread": 0.03,
                     "calibration_errors": [-0.04, 0.06], "load": 1.0, "small_large": 0.4})
    for run, meas in ((1, [1.0, 2.0]), (2, [1.1, 2.0])):
        rows = [row(1.0, meas[0], meas[0]), row(2.12, meas[1], 2.5)]
        if run == 2:  # validate records the probes' ratio around each network (from session 24)
            rows = [{**r, "probes_ratio": q} for r, q in zip(rows, (0.42, 0.46))]
        ll.append_jsonl(path, {"backend": "onnxruntime", "kind": "set", "set": "references", "run": run, "seconds": 3.0,
                         "load": 1.0, "rows": rows})
    ll.append_jsonl(path, {"backend": "onnxruntime", "kind": "repeat", "ms": [8.0, 8.0], "as_timed_ms": [7.0, 9.0],
                     "load": 1.0})
    out = tmp_path / "r.md"
    ll.report(ll.read_jsonl(path), out)
    text = out.read_text()
    assert "probe timings whose (max-min)/median spread was 3%" in text and "-4.0% to +6.0%" in text
    # run 1: errors 0 and +6%: both within 10%, one within 5%; as timed 2.12/2.5 is -15%: 50% / 50%
    assert "| references | 2 | 1 | 50% / 100% | +3.0% ± 3.0% | +6.0% |  | 50% / 50% | 3 | 1.0 |  |  |" in text
    # run 2: errors -9.1% and +6%: neither within 5%; measured 1.1 vs 1.0 (+10%) and 2.0 vs 2.0: sd 5.0%
    assert "| references | 2 | 2 | 0% / 100% |" in text and "| 5.0% |" in text
    assert "| 5.0% | +10.0% |" in text  # the probes' ratio around run 2's networks (median 0.44) against the build's
    assert "converted 8.000 ms, CV 0.0%" in text and "as timed 8.000 ms, CV 12.5%" in text
    # An older run's repeat (no network named) was V3-Large, the probe: the report says its converted CV means nothing.
    assert "MobileNetV3-Large in 2 fresh processes" in text and "It is the probe itself" in text
    ll.append_jsonl(path, {"backend": "onnxruntime", "kind": "repeat", "network": "MobileNetV3-Small", "ms": [2.0, 2.2],
                           "as_timed_ms": [2.0, 2.0], "load": 1.0})
    ll.report(ll.read_jsonl(path), out)
    text = out.read_text()
    assert "MobileNetV3-Small in 2 fresh processes: converted 2.100 ms, CV 4.8%" in text
    assert text.count("It is the probe itself") == 1


def test_report_shows_host_noise_model_held_out_error_tercile_bias_and_two_tables_agreement(ll, tmp_path):
    path = tmp_path / "r.jsonl"
    ll.append_jsonl(path, {"kind": "note", "text": "shared host"})
    ll.append_jsonl(path, {"backend": "torch", "kind": "noise", "date": "2026-12-06 18:30", "seconds": 60, "load_before": 1.5,
                     "windows": 40, "ratio_within_5": 0.55, "ratio_spread": 0.21, "sweep_blocks": 48,
                     "sweep_retimed": 6, "sweep_share": 0.125})
    table = {"backend": "torch", "kind": "table", "table": 1, "name": "t.json", "build_s": 5.0, "model": 5,
             "call_weight": 0.5, "depthwise_ms": 0.13, "cold_ms": 0.2, "feature_ms": 0.8, "cache_bytes": 2 ** 25,
             "sums_ms": [1.2, 9.0, 3.0], "calls_ms": [0.1, 0.2, 0.1], "depthwise": [1, 1, 0],
             "cold_mweights": [0.0, 5.0, 1.0], "measured_ms": [1.0, 10.0, 3.1],
             "reference_ms": 8.0, "probe_spread": 0.02,
             "calibration_errors": [0.01, -0.02], "heldout_errors": [0.03, -0.12, 0.01],
             "calibration_names": ["V3-Small x0.35", "V3-Large x1", "v3_small widest"], "distrust": None}
    ll.append_jsonl(path, table)
    rows = [{"arch": "x", "predicted_ms": p, "measured_ms": m, "error": p / m - 1, "measured_raw_ms": m, "set": "random"}
            for p, m in ((1.1, 1.0), (2.0, 2.0), (2.7, 3.0))]
    ll.append_jsonl(path, {"backend": "torch", "kind": "set", "set": "random v3_small", "run": 1, "seconds": 3.0, "load": 1.0,
                     "rows": rows})
    ll.append_jsonl(path, {**table, "table": 2, "name": "t2.json", "distrust": "the machine was busy", "reference_ms": 10.0,
                           "small_large": 0.4321})
    ll.append_jsonl(path, {"backend": "torch", "kind": "agreement", "table": 2, "networks": 3, "diffs": [0.01, -0.04, 0.02],
                           "entries": {"n": 800, "median": 0.001, "sd": 0.0062, "beyond_5": 1}})
    out = tmp_path / "r.md"
    ll.report(ll.read_jsonl(path), out)
    text = out.read_text()
    assert "**Note:** shared host" in text
    assert text.count("Networks timed against both probes (format 4); MobileNetV3-Small ran at 0.432 of "
                      "MobileNetV3-Large over the build's network timings.") == 1  # the second table's line only
    assert "within ±5% in 55% of 40 windows (spread 21.0%" in text
    assert ("; 6 of 48 blocks timed twice differed by more than 3% (12%: a build would be called busy over 10%)."
            in text)
    assert "The host was noisier than the acceptance allows (55% of windows within ±5%, not >= 80%)" in text
    assert ("model 5: call weight 0.50, 0.130 ms per depthwise-first block, 0.200 ms per million weights read from "
            "memory (last-level cache 32 MiB), 0.800 ms per million feature-map elements") in text
    assert "model 2: scale 1.120, call weight 3.50, overhead 0.000 ms" == ll.fit_text(
        {"model": 2, "scale": 1.12, "call_weight": 3.5, "overhead_ms": 0.0})
    assert "held-out errors (each calibration network predicted by a fit made without it) -12.0% to +3.0%, 67% within ±5%; " \
           "beyond ±10%: V3-Large x1 -12.0%." in text
    assert "| +10.0%, +0.0%, -10.0% |" in text  # one row per tercile: small over, large under
    assert "Second table, built from scratch after the validation runs: table `t2.json`" in text
    assert "**Untrusted**: the machine was busy." in text
    assert "second / first - 1 -4.0% to +2.0% (mean -0.3%); 67% within ±3%" in text
    # the same in each table's unit (8 and 10 ms): 1.01 x 0.8, 0.96 x 0.8, 1.02 x 0.8
    assert ("The units differ by +25.0% (the probe ran that much faster or slower while the second was built); in each "
            "table's unit the predictions differ by -23.2% to -18.4% (mean -20.3%), 0% within ±3%.") in text
    assert "Their 800 common block entries (as stored): second / first - 1 median +0.10%, sd 0.62%, 1 beyond ±5%." in text


def test_report_of_a_second_table_in_the_machines_unit_says_what_its_own_speed_would_have_made(ll, tmp_path):
    path = tmp_path / "r.jsonl"
    table = {"backend": "onnxruntime", "kind": "table", "table": 1, "name": "t.json", "build_s": 5.0, "model": 6,
             "call_weight": 2.0, "depthwise_ms": 0.0, "cold_ms": 0.0, "feature_ms": 0.0, "cache_bytes": 2 ** 25,
             "reference_ms": 5.0, "own_ms": 5.0, "unit_from": "this build", "probe_spread": 0.02}
    ll.append_jsonl(path, table)
    ll.append_jsonl(path, {**table, "table": 2, "own_ms": 4.5, "unit_from": "machine"})
    ll.append_jsonl(path, {"backend": "onnxruntime", "kind": "agreement", "table": 2, "networks": 2,
                           "diffs": [0.01, -0.02]})
    out = tmp_path / "r.md"
    ll.report(ll.read_jsonl(path), out)
    text = out.read_text()
    assert "Its unit became the machine's (the first table of this run's store, measure.unit)." in text
    assert "Unit carried from the machine's first table (5.000 ms); this build's own probe median 4.500 ms (-10.0%)." in text
    assert "second / first - 1 -2.0% to +1.0% (mean -0.5%); 100% within ±3%" in text
    # in the second build's own speed: 1.01 x 0.9 - 1 = -9.1%, 0.98 x 0.9 - 1 = -11.8%
    assert ("Both are in the machine's unit (5.000 ms, set by the first table; the second converted its timings to it, "
            "measure.unit): the probe ran -10.0% during the second build; in each build's own speed (latency.unit=build) "
            "the predictions would differ by -11.8% to -9.1% (mean -10.4%), 0% within ±3%.") in text


def test_model_terms_compares_each_stored_table_once_and_says_no_difference_inside_the_sign_test(ll, tmp_path):
    mt = importlib.import_module("benchmarks.latency_lut.model_terms")
    from measure.calibration import TERMS, columns, named_full_set, predict, reload_mweights

    named = named_full_set()
    names = list(named)[:6]

    def table(backend: str, boundary: float, format5: bool, reload: float = 0.0) -> dict:
        rows = [{"sum_ms": 0.5 + i, "calls_ms": 0.05 + 0.01 * i, "depthwise": i % 2, "cold_mweights": 0.0,
                 "mfeatures": 0.0, "mboundary": 0.1 + 0.5 * (i % 3), "mreload": reload_mweights(named[n], 2 ** 21)}
                for i, n in enumerate(names)]
        true = {**dict.fromkeys(TERMS, 0.0), "call_weight": 1.0, "boundary_ms": boundary, "reload_ms": reload}
        line = {"kind": "table", "backend": backend, "table": 1, "model": 7, "call_weight": 1.0, **columns(rows),
                "l2_bytes": 2 ** 21,
                "measured_ms": [predict(true, r) * (1 + 0.01 * (-1) ** i) for i, r in enumerate(rows)],
                "calibration_names": names}
        return {**line, "block_ms": 0.1} if format5 else line
    first = table("onnxruntime", 0.3, True, reload=1.0)
    older = {k: v for k, v in table("torch", 0.0, False).items() if k not in ("mboundary", "mreload")}  # from names
    first["mreload"] = [0.0] * 6  # as a table whose backend the term is not used on records it: recomputed anyway
    (tmp_path / "latency_lut_a.jsonl").write_text("\n".join(json.dumps(t) for t in (first, older)) + "\n")
    (tmp_path / "latency_lut_b.jsonl").write_text(json.dumps({**first, "table": 2}) + "\n")  # reused: counted once
    rows = mt.compare(tmp_path)
    assert [(r["report"], r["backend"], r["format5"]) for r in rows] == [("latency_lut_a", "onnxruntime", True),
                                                                         ("latency_lut_a", "torch", False)]
    ort = rows[0]
    assert ort["reload_ms"] > 0.9  # model 8 finds the reload term the timings hold; the models without it miss more
    assert ort["model 8 (+ reload)"]["rms"] < min(ort["model 7 (+ boundary)"]["rms"], ort["model 6"]["rms"])
    text = mt.report(rows)
    assert "| latency_lut_a | onnxruntime | 1 | paired | " in text and "| latency_lut_a | torch | 1 | alone | " in text
    assert ("- onnxruntime, entries timed paired (format 5), 1 tables, model 8 (+ reload) against model 7 (+ boundary): "
            "held-out rms lower in 1, higher in 0, equal in 0: no difference shown (p 1)") in text
    assert mt.sign_test(12, 12) < 0.001 and mt.sign_test(0, 0) == 1.0


def test_latency_lut_seeds_other_networks_and_reports_the_previous_models_on_the_same_timings(ll):
    usual, other = ll.sets(2, 1, ["v3_small"]), ll.sets(2, 1, ["v3_small"], seed=1)
    assert list(other) == ["random v3_small (seed 1)", "references", "netadapt-shaped (seed 1)"]
    assert other["references"] == usual["references"]
    assert [format_arch(a) for _, a in other["random v3_small (seed 1)"]] != [
        format_arch(a) for _, a in usual["random v3_small"]]
    rows = [{"arch": "x", "predicted_ms": p, "measured_ms": m, "error": p / m - 1, "measured_raw_ms": m,
             "set": "random", "model6_ms": p6} for p, p6, m in ((1.0, 0.9, 1.0), (2.0, 1.9, 2.0), (3.0, 3.3, 3.0))]
    lines = ll._beside_lines({"random v3_small": {1: {"rows": rows}}})
    assert "| random v3_small | 1 | 0% / 100% | -10.0% | -10.0%, -5.0%, +10.0% |" in lines  # -5.0000001%: beyond
    assert any(line.startswith("The same timings predicted by model 6") for line in lines)
    assert not any("model 7" in line for line in lines)  # a session-27 run recorded model 6 only
    later = [{**{k: v for k, v in r.items() if k != "model6_ms"}, "model7_ms": r["model6_ms"] * 1.1} for r in rows]
    lines = ll._beside_lines({"random v3_small": {1: {"rows": later}}})
    assert any(line.startswith("The same timings predicted by model 7") for line in lines)
    assert "| random v3_small | 1 | 67% / 67% | +21.0% | -1.0%, +4.5%, +21.0% |" in lines
    assert ll._beside_lines({"random v3_small": {1: {"rows": [{k: v for k, v in r.items() if k != "model6_ms"}
                                                              for r in rows]}}}) == []


def test_entry_agreement_compares_the_parts_two_tables_share_not_networks_or_empty_graphs(ll, tmp_path):
    from measure import LatencyTable

    def table(name, entries):
        records = {k: {"p10": v, "median": v, "passes": [{"p10": v, "median": v, "iqr": 0.0, "n": 5, "factor": 1.0,
                                                          "paired": True}]}
                   for k, v in entries.items()}
        (tmp_path / name).write_text(json.dumps({"format": 5, "backend": "onnxruntime", "threads": 1, "input_size": 32,
                                                 "batch": 1, "channels_last": False, "calibration": None,
                                                 "reference": {"probe": "v3_large", "ms": 3.0}, "entries": records}))
        return LatencyTable(tmp_path / name, input_size=32, measure_missing=False)

    first = table("a.json", {"stem_a": 1.0, "block_b": 2.0, "head_c": 4.0, "net_r32 x": 5.0, "call_r32_i3": 0.1,
                             "block_only_here": 1.0})
    second = table("b.json", {"stem_a": 1.0, "block_b": 2.2, "head_c": 4.1, "net_r32 x": 9.0, "call_r32_i3": 0.5})
    assert ll.entry_agreement(first, second) == {"n": 3, "median": 0.025, "sd": pytest.approx(0.04249, abs=1e-5),
                                                 "beyond_5": 1}


def test_host_check_calls_a_host_noisy_when_five_probe_timings_spread_beyond_the_limit(ll):
    quiet = iter([8.0, 8.1, 8.2, 8.0, 8.1])
    noisy = iter([8.0, 9.5, 8.2, 10.0, 8.1])
    assert ll.host_check("onnxruntime", 0.05, timer=lambda: next(quiet))["quiet"]
    check = ll.host_check("onnxruntime", 0.05, timer=lambda: next(noisy))
    assert not check["quiet"] and check["spread"] == pytest.approx((10.0 - 8.0) / 8.2, abs=1e-4)


def test_host_check_calls_a_host_busy_when_the_sweep_would_time_blocks_again_though_the_probe_held(ll):
    steady = iter([8.0, 8.1, 8.2, 8.0, 8.1] * 2)
    ok = ll.host_check("onnxruntime", 0.05, timer=lambda: next(steady), sweep_blocks=10, time_entry=lambda e: 1.0)
    assert ok["quiet"] and (ok["sweep_blocks"], ok["sweep_retimed"]) == (10, 0)
    levels = iter([1.0] * 10 + [1.0] * 8 + [1.05] * 2)  # 2 of 10 blocks 5% slower in the second pass: 20% > 10%
    busy = ll.host_check("onnxruntime", 0.05, timer=lambda: next(steady), sweep_blocks=10,
                         time_entry=lambda e: next(levels))
    assert not busy["quiet"] and busy["spread"] < 0.05 and (busy["sweep_retimed"], busy["sweep_share"]) == (2, 0.2)


def test_host_noise_report_states_each_run(load_benchmark):
    hn = load_benchmark("host_noise")
    rec = {"date": "2026-11-26 10:54", "backend": "onnxruntime", "seconds": 60, "pairs": 4538, "window": 20,
           "load_before": 0.96, "large_p10_min_ms": 7.19, "large_p10_max_ms": 10.14, "large_spread": 0.35,
           "ratio_median": 0.3763, "ratio_spread": 0.304, "ratio_within_5": 0.64}
    md = hn.report([rec, {**rec, "sweep_blocks": 48, "sweep_retimed": 25, "sweep_share": 25 / 48}])
    assert "| 2026-11-26 10:54 | onnxruntime | 60 | 4538 | 20 | 0.96 | 7.19-10.14 (35%) | 0.3763 | 30.4% | 64% | |\n" in md
    assert "| 0.3763 | 30.4% | 64% | 25 of 48 (52%) |\n" in md


def test_the_unit_study_shows_a_retry_skipping_a_slow_spell(load_benchmark):
    import importlib

    load_benchmark("latency_lut")  # puts the repository on the path as the scripts' tests need
    pp = importlib.import_module("benchmarks.latency_lut.probe_protocol")
    # 6.0 ms steady, with one spell of 5 timings at 7.2 ms (+20%): a unit set in it is 20% off, unless retried
    ms = [6.0] * 40 + [6.0, 7.2, 7.2, 7.2, 7.2, 7.2, 6.0] + [6.0] * 40
    d = pp.unit_rules(ms)
    assert max(d["5 in a row"]) == pytest.approx(0.2)
    assert max(d["5 in a row, retried while spread > 5%"]) == pytest.approx(0.2)  # 5 in a row, all slow: spread 0
    assert sum(x > 0.1 for x in d["5 in a row, retried while spread > 5%"]) < sum(x > 0.1 for x in d["5 in a row"])
    assert max(d["30 in a row"]) == 0.0  # a median over 30 outvotes a 5-timing spell
    runs = [{"date": "d", "n": 2, "noise": {"ratio_within_5": 1.0, "ratio_spread": 0.02, "load_before": 1.0},
             "protocols": {k: {"converted": {"median": m, "max": m, "within_3": 1.0},
                               "as_timed": {"median": m, "max": m}, "reference_ms": 6.0}
                           for k, m in zip(pp.PROTOCOLS, (0.02, 0.01))}}] * 5
    assert "lower in 5 of 5 runs (one-sided sign test p = 0.031): shown lower." in pp.report(runs)
    assert "4 of 4 runs (one-sided sign test p = 0.062): no difference shown" in pp.report(runs[:4])
    assert pp.sign_p(6, 7) == 8 / 128 and pp.sign_p(0, 3) == 1.0


def test_two_builds_units_are_the_medians_of_whole_stretches_compared_apart(load_benchmark):
    import importlib

    load_benchmark("latency_lut")
    pp = importlib.import_module("benchmarks.latency_lut.probe_protocol")
    # four whole 120 s stretches at 6.0, 6.0, 6.3, 6.0 ms and a last one cut short (not a build): dropped
    at = [i * 10.0 for i in range(52)]
    ms = [6.0] * 24 + [6.3] * 12 + [6.0] * 12 + [9.0] * 4
    units = pp.build_units(ms, at, 120.0)
    assert units == [6.0, 6.0, 6.3, 6.0]
    d = pp.unit_pairs(units)  # builds 1-3, 1-4, 2-4: neighbours are not "apart"
    assert d == pytest.approx([0.05, 0.0, 0.0])
    rec = {"kind": "unit", "date": "2026-12-07 12:00", "seconds": 520, "backend": "torch", "ms": ms, "t": at}
    md = pp.report([rec])
    assert "| 2026-12-07 12:00 | torch | 520 | 4 | 6.000-6.300 | 0.0% / 5.0% | 67% |" in md
    assert "| 2026-12-07 12:00 | torch | 520 | 52 | 5 in a row |" in md and "120 in a row" not in md  # too short
    old = {k: v for k, v in rec.items() if k not in ("t", "backend")}  # a record from before either was kept
    md = pp.report([old])
    assert "| 2026-12-07 12:00 | onnxruntime | 520 | 52 | 5 in a row |" in md and "Two builds' units" not in md


def test_size_probe_compares_each_conversion_over_every_two_runs(load_benchmark):
    import importlib

    load_benchmark("latency_lut")
    sp = importlib.import_module("benchmarks.latency_lut.size_probe")
    # A small network (at V3-Small's latency: weight 0) and a large one (at V3-Large's: weight 1); in run 2 the small
    # probe and the small network ran 10% slower beside an unchanged large probe.
    def run(small_ratio_to_large):
        return {"session": "s", "backend": "torch", "date": "2026-12-07 12:00", "rows": [
            {"space": "v3_small", "ms": 4.0 * small_ratio_to_large / 0.4, "large": small_ratio_to_large, "large_ms": 10.0,
             "small": 1.0, "small_ms": 10.0 * small_ratio_to_large},
            {"space": "v3_large", "ms": 10.0, "large": 1.0, "large_ms": 10.0, "small": 1 / small_ratio_to_large,
             "small_ms": 10.0 * small_ratio_to_large}]}
    runs = [run(0.4), run(0.44)]
    a, b = runs[0]["rows"][0], runs[1]["rows"][0]
    assert sp.change(a, b, "large probe") == pytest.approx(0.10) and sp.change(a, b, "small probe") == 0.0
    assert sp.change(a, b, "interpolated") == 0.0 and sp.change(a, b, "nearest") == 0.0
    a, b = runs[0]["rows"][1], runs[1]["rows"][1]
    assert sp.change(a, b, "large probe") == 0.0 and sp.change(a, b, "small probe") == pytest.approx(1 - 1 / 1.1)
    assert sp.change(a, b, "interpolated") == 0.0
    md = sp.report(runs)
    assert "## torch, session s" in md and "ranged 0.400-0.440" in md
    assert "| large probe | random v3_small | 10.0% | 10.0% | 0% |" in md
    assert "| interpolated | random v3_small | 0.0% | 0.0% | 100% |" in md
    assert "lower than by the large probe alone for 1 of 1 networks (one-sided sign test p = 0.500): no difference" in md
    assert sp.report(runs[:1]).count("##") == 0  # one run compares nothing


def _pairing_passes(speeds, session="s", extra=None, alternating=False):
    """Two blocks (0.1 and 0.3 ms at speed 1) on a machine whose speed moves as a whole: as timed, each carries
    the pass's speed; paired with the reference (0.12 ms at speed 1), its ratio does not; the probe (5 ms) moves
    with the machine too. ``extra``: per pass, a factor on block b's as-timed p10 alone (what pairing cannot see)."""
    rows = []
    for i, s in enumerate(speeds):
        b = (extra or [1.0] * len(speeds))[i]
        rows.append({"session": session, "backend": "onnxruntime", "pass": i, "date": f"2026-12-07 17:{i:02d}",
                     "probe_ms": [5.0 * s, 5.0 * s],
                     "blocks": {"a": {"p10": 0.1 * s, "ratio": 0.1 / 0.12, "ref_ms": 0.12 * s},
                                "b": {"p10": 0.3 * s * b, "ratio": 0.3 * b / 0.12, "ref_ms": 0.12 * s}}})
        if alternating:  # (from session 26) a ratio noisier than the paired one by 1% in every second pass
            for key, block in rows[-1]["blocks"].items():
                block["alternating"] = block["ratio"] * (1.01 if i % 2 else 1.0) * (1.05 if i >= 2 and key == "b" else 1)
    return rows


def test_block_pairing_sees_a_drifting_machine_in_blocks_as_timed_and_not_in_their_ratio(load_benchmark):
    import importlib

    load_benchmark("latency_lut")
    bp = importlib.import_module("benchmarks.latency_lut.block_pairing")
    # 3 builds of 2 passes; the machine runs 8% slower in the second pass of each build, and 5% slower in build 2
    passes = _pairing_passes([1.0, 1.08, 1.05, 1.05 * 1.08, 1.0, 1.08])
    s = bp.summary(passes, per=2)
    assert s["as timed"]["again"] == [1.0, 1.0, 1.0]  # both blocks' passes 8% apart in every build
    assert s["paired"]["again"] == [0.0, 0.0, 0.0] and s["in the probe's unit"]["again"] == [0.0, 0.0, 0.0]
    assert s["as timed"]["sd"]["a"] == pytest.approx(bp.rel_sd([1.0, 1.05, 1.0]))
    assert s["paired"]["sd"] == {"a": pytest.approx(0.0, abs=1e-12), "b": pytest.approx(0.0, abs=1e-12)}
    text = bp.report(passes, per=2)
    assert "| as timed | 100% (100%-100%) | 2.32% | 2.32% |" in text
    assert "| paired | 0% (0%-0%) | 0.00% | 0.00% |" in text
    assert "paired against as timed: lower for 2 of 2 blocks (p = 0.25): no difference shown" in text
    # block b alone slows by 4% in one pass (not the machine): pairing times it again, as it should
    one = bp.summary(_pairing_passes([1.0] * 4, extra=[1.0, 1.04, 1.0, 1.0]), per=2)
    assert one["paired"]["again"] == [0.5, 0.0] and one["as timed"]["again"] == [0.5, 0.0]
    assert "alternating" not in s and "alternating against" not in text  # passes before session 26 lack it
    alt = bp.summary(_pairing_passes([1.0, 1.08, 1.05, 1.05 * 1.08], alternating=True), per=2)
    assert alt["alternating"]["again"] == [0.0, 0.0] and alt["alternating"]["sd"]["b"] == pytest.approx(0.025 / 1.025)
    assert "alternating against paired: lower for 0 of 2 blocks" in bp.report(
        _pairing_passes([1.0, 1.08, 1.05, 1.05 * 1.08], alternating=True), per=2)
    assert bp.verdict(0, 8).endswith("shown higher") and bp.verdict(8, 8).endswith("shown lower")


def test_block_pairing_alternating_is_the_median_of_per_call_ratios(load_benchmark, monkeypatch):
    import importlib

    load_benchmark("latency_lut")
    bp = importlib.import_module("benchmarks.latency_lut.block_pairing")
    now, calls = [0.0], iter([0.2, 0.1, 0.4, 0.1, 0.3, 0.2, 0.9, 0.3, 0.2, 0.1])  # block, reference, ...
    monkeypatch.setattr(bp.time, "perf_counter", lambda: now[0])

    def step():
        now[0] += next(calls)
    assert bp.alternating(step, step, calls=5) == pytest.approx(2.0)  # ratios 2, 4, 1.5, 3, 2
    assert bp.verdict(0, 0).startswith("not judged")
