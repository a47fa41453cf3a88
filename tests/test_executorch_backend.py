"""The optional ExecuTorch backend: a one-line error without the extra (runs everywhere), and with it
installed, eager outputs, a latency and lowered programs cached per structure (skipped when the extra
is missing; .ci/run installs it)."""
import subprocess
import sys
from functools import partial

import pytest
import torch

import measure.executorch as et
from measure import LatencyTable, MeasureError, measure_latency
from measure.entries import block_entry
from measure.latency import check_backend
from measure.probe import SpeedProbe
from space import ArchSpec, BlockSpec, build_model

FAST = {"warmup": 1, "repeats": 5, "max_rounds": 1}
TINY = ArchSpec(8, (BlockSpec(3, 16, 8), BlockSpec(3, 24, 16, True, "HS", 2)), 96, 32)  # calibration's quick_set
MISSING = "latency.backend=executorch needs the executorch extra: pip install -e '.[executorch]' (in the bneck checkout)"


def test_without_the_extra_the_backend_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch", None)  # as if not installed: every import of it fails
    assert et.MISSING == MISSING
    for call in (lambda: check_backend("executorch"), lambda: measure_latency(TINY, backend="executorch", **FAST),
                 lambda: et.et_runner(build_model(TINY), torch.randn(1, 3, 32, 32))):
        with pytest.raises(MeasureError) as e:
            call()
        assert str(e.value) == MISSING


def test_lut_build_without_the_extra_exits_2_with_that_line(tmp_path):
    code = ("import runpy, sys; sys.modules['executorch'] = None; "
            f"sys.argv = ['measure.lut', 'build', '+space=v3_small', 'latency.backend=executorch', 'results_dir={tmp_path}']; "
            "runpy.run_module('measure.lut', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"error: {MISSING}"]
    assert not (tmp_path / "lut").exists()  # refused before anything was timed or written


@pytest.fixture
def et_cache(tmp_path, monkeypatch):
    pytest.importorskip("executorch")
    monkeypatch.setenv("BNECK_ET_CACHE", str(tmp_path / "pte"))
    return tmp_path / "pte"


def test_runner_matches_eager_times_and_reuses_the_lowered_program(et_cache):
    torch.manual_seed(0)
    module, x = build_model(TINY).eval(), torch.randn(1, 3, 32, 32)
    for m in module.classifier:  # the head's init gives outputs of ~1e-5, which any input would match
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight)
    before = et.exports
    run = et.et_runner(module, x, threads=1)
    with torch.no_grad():
        expected = module(x)
        assert expected.abs().max() > 0.1 and torch.allclose(run()[0], expected, rtol=1e-3, atol=1e-4)
    assert et.exports == before + 1 and len(list(et_cache.glob("*.pte"))) == 1
    from executorch.extension.pybindings import portable_lib  # imported (warnings and all) by the runner

    assert portable_lib._threadpool_get_thread_count() == 1
    # Through the backend registry, a network of the same structure built anew: the cached program.
    lat = measure_latency(TINY, backend="executorch", input_size=32, **FAST)
    assert 0 < lat.p10_ms <= lat.median_ms and lat.repeats == 5 and lat.backend == "executorch"
    assert et.exports == before + 1
    other = TINY.with_blocks([BlockSpec(5, 16, 8), TINY.blocks[1]])  # another kernel: another program
    assert et.structure_key(build_model(other), x.shape) != et.structure_key(module, x.shape)


def test_a_table_lowers_an_entry_once_over_its_passes(et_cache, tmp_path, monkeypatch):
    monkeypatch.setattr("measure.table.SpeedProbe", partial(SpeedProbe, clock=lambda: 0.0, timer=lambda: 2.0))
    table = LatencyTable(tmp_path / "t.json", backend="executorch", input_size=32, passes=2, confirm=0, **FAST)
    entry = block_entry(16, 16, BlockSpec(3, 24, 16, True, "HS", 2))
    table._speed_probe().block_runner()  # the reference block every entry is timed against: built once per table
    before = et.exports
    assert table.fill([entry]) == 1
    assert len(table.entries[entry.key]["passes"]) == 2 and table.entries[entry.key]["p10"] > 0
    assert et.exports == before + 1  # two passes, two runners, one lowering


class DataDependent(torch.nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # torch.export cannot trace a branch on a tensor's value


def test_an_export_failure_is_one_line_naming_the_network(et_cache):
    with pytest.raises(MeasureError) as e:
        et.et_runner(DataDependent(), torch.randn(1, 3, 8, 8), name="latency-table entry 'odd'")
    msg = str(e.value)
    assert msg.startswith("cannot export latency-table entry 'odd' to ExecuTorch: ") and "\n" not in msg
