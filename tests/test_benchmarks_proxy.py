"""benchmarks/proxy_fidelity/proxy_fidelity.py: the fidelity figures and verdicts on hand-made two-seed results."""
from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def pf(load_benchmark):
    return load_benchmark("proxy_fidelity")


def rows(scores: dict[str, tuple[float, float]]) -> list[dict]:
    """Two seeds per architecture; params/MACs rise with the name's order so size ranks them alike."""
    out = []
    for k, (name, (s0, s1)) in enumerate(sorted(scores.items())):
        for seed, top1 in ((0, s0), (1, s1)):
            out.append({"dataset": "cluttered", "tag": "t", "name": name, "seed": seed, "top1": top1,
                        "test_top1": top1, "seconds": 10.0, "fit_seconds": 9.0,
                        "params": 1000 + k, "macs": 10_000 + k})
    return out


def test_seed_sd_arch_sd_and_their_ratio_are_the_documented_formulas(pf):
    # seed differences of 2 points on every arch: seed sd = sqrt(mean(2^2)/2) = sqrt(2)
    means = [80.0, 84.0, 88.0, 92.0]
    scores = {f"a{i}": ((m - 1) / 100, (m + 1) / 100) for i, m in enumerate(means)}
    s = pf.stats(rows(scores), n_boot=200)
    assert s["seed_sd"] == pytest.approx(math.sqrt(2))
    assert s["arch_sd"] == pytest.approx(5.163977794943222)  # sd of 80, 84, 88, 92 with ddof=1
    assert s["arch_over_seed"] == pytest.approx(5.163977794943222 / math.sqrt(2))
    assert s["tau"] == pytest.approx(1.0) and s["tau_params"] == pytest.approx(1.0)
    # equal seed differences everywhere, so every resample has seed sd sqrt(2): the interval is that of
    # the arch sd alone, and the point estimate lies inside it
    assert s["ratio_lo"] <= s["arch_over_seed"] <= s["ratio_hi"]


def test_the_ratio_interval_decides_the_wording_of_the_verdict(pf):
    # 20 architectures spread 1 point apart with seed noise of +-0.5: ratio far above 3, interval too
    wide = {f"r{i:02d}": ((70 + i - 0.5) / 100, (70 + i + 0.5) / 100) for i in range(20)}
    s = pf.stats(rows(wide), n_boot=300)
    assert s["ratio_lo"] > 3
    line = next(x for x in pf._verdicts(s) if "arch sd / seed sd" in x)
    assert ": met (the interval excludes 3)" in line
    # the same spread with seed differences alternating 1 and 4 points: ratio 2.87, an interval that holds 3
    noisy = {f"r{i:02d}": ((70 + i - (0.5 if i % 2 else 2)) / 100, (70 + i + (0.5 if i % 2 else 2)) / 100)
             for i in range(20)}
    s = pf.stats(rows(noisy), n_boot=300)
    assert s["arch_over_seed"] == pytest.approx(2.8697, abs=1e-4) and s["ratio_lo"] < 3 < s["ratio_hi"]
    line = next(x for x in pf._verdicts(s) if "arch sd / seed sd" in x)
    assert "the interval holds 3: the data do not tell either way" in line


def test_the_report_prints_the_ratio_interval_and_the_reference_gap(pf, tmp_path):
    scores = {f"r{i:02d}": ((60 + 2 * i) / 100, (61 + 2 * i) / 100) for i in range(4)}
    scores["V3-Small"] = (0.90, 0.91)
    scores["V3-Small x0.5"] = (0.80, 0.81)
    text = pf.report(rows(scores), tmp_path / "r.md")
    assert "## cluttered, t (12/12 trainings finished," in text  # its architectures x seeds
    s = pf.stats(rows(scores))
    row = next(x for x in text.splitlines() if x.startswith("| holdout | 6 |"))
    assert f"| {s['arch_over_seed']:.1f} [{s['ratio_lo']:.1f}, {s['ratio_hi']:.1f}] |" in row
    # V3-Small is 10 points above x0.5 = 10 / (1/sqrt 2) seed sd
    assert "| +10.0 (+14.1) |" in row
    assert (tmp_path / "r.md").read_text().strip() == text.strip()


def test_no_figures_before_three_architectures_have_both_seeds(pf):
    two = rows({"a": (0.5, 0.6), "b": (0.7, 0.8)})
    assert pf.stats(two) is None
