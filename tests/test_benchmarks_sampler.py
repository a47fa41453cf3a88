"""benchmarks/search_sampler/search_sampler.py: the report's arithmetic and verdicts on synthetic studies."""
from __future__ import annotations

import pytest

SETTINGS = {"space": "v3_large", "data": "digits", "accuracy": "supernet", "trials": 200, "overrides": []}


@pytest.fixture(scope="module")
def ss(load_benchmark):
    return load_benchmark("search_sampler")


def study(sampler: str, seed: int, hv: float) -> dict:
    return {"sampler": sampler, "seed": seed, "hv": hv, "hv_at": {"0.25": hv / 2, "0.5": hv * 0.8, "1.0": hv},
            "front": 5, "seconds": 600.0, "load": 1.0}


def test_a_sampler_better_on_every_seed_is_called_better_and_one_inside_the_noise_is_not(ss):
    rows = [study("random", s, 0.40) for s in range(3)]
    rows += [study("tpe", 0, 0.50), study("tpe", 1, 0.52), study("tpe", 2, 0.49)]
    rows += [study("nsga2", 0, 0.44), study("nsga2", 1, 0.37), study("nsga2", 2, 0.41)]
    text = ss.report(rows, SETTINGS)
    tpe = next(line for line in text.splitlines() if line.startswith("| tpe | 3 | 1.2"))
    # mean 1.258 but the interval reaches 1.167: better than random, the 1.2x target not shown
    assert "better than random; 1.2x not shown (interval reaches below)" in tpe and "1.250, 1.300, 1.225" in tpe
    nsga = next(line for line in text.splitlines() if line.startswith("| nsga2 | 3 |") and "random" not in line
                and "verdict" not in line and "[" in line)
    assert "no difference shown (interval includes 1)" in nsga
    # mean hv of random at 100% with a zero-width interval (identical seeds)
    assert "| random | 3 | 0.2000 ± 0.0000 | 0.3200 ± 0.0000 | 0.4000 ± 0.0000 | 5.0 | 10.0 |" in text


def test_the_target_is_met_only_when_the_whole_interval_clears_1_2(ss):
    rows = [study("random", s, 0.40) for s in range(3)]
    rows += [study("tpe", 0, 0.53), study("tpe", 1, 0.535), study("tpe", 2, 0.532)]  # 1.325-1.338
    rows += [study("nsga2", 0, 0.44), study("nsga2", 1, 0.445), study("nsga2", 2, 0.442)]  # 1.10-1.11
    lines = ss.report(rows, SETTINGS).splitlines()
    assert "better than random, >= 1.2x (target met)" in next(x for x in lines if x.startswith("| tpe | 3 | 1.3"))
    assert "better than random; below the 1.2x target" in next(x for x in lines if x.startswith("| nsga2 | 3 | 1.1"))


def test_one_seed_gives_no_interval(ss):
    text = ss.report([study("random", 0, 0.4), study("tpe", 0, 0.5)], SETTINGS)
    assert "one seed: no interval" in text
