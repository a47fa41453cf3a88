"""Wall-clock latency of a network (or one block) on a CPU backend: eager torch, onnxruntime or ExecuTorch.

Protocol, built for a noisy shared machine: a fixed thread count, ``warmup`` untimed runs, then
rounds of ``repeats`` timed runs each; after each round, when the interquartile range exceeds
``max_rel_spread`` x the median, another round is pooled in (up to ``max_rounds``). The result is
the median of all timed runs, with the IQR as its spread. Median and IQR, not mean and std, so a
few runs disturbed by a colleague's job neither move the value nor widen the spread much.

The fastest decile (``p10_ms``) is reported too. Another process can only ever *add* time to a run,
so on a machine whose load changes between two measurements (a table entry timed at noon, the
network it predicts at night) the low quantile is the more reproducible figure; the lookup table
and the ``measured`` latency model use it by default (``latency.statistic``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from space import ArchSpec, build_model

from .errors import MeasureError
from .names import BACKENDS, STATISTICS
from .runner import paired_timing, time_callable


@dataclass(frozen=True)
class Latency:
    median_ms: float
    spread_ms: float  # interquartile range (q75 - q25) of the timed runs
    repeats: int  # timed runs behind the median
    backend: str
    p10_ms: float = float("nan")  # 10th percentile of the timed runs

    def value(self, statistic: str = "median") -> float:
        """The figure ``statistic`` names: ``median`` or ``p10``."""
        return {"median": self.median_ms, "p10": self.p10_ms}[check_statistic(statistic)]

    def __str__(self) -> str:
        return f"{self.median_ms:.3f} ms (IQR {self.spread_ms:.3f}, n={self.repeats}, {self.backend})"


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise MeasureError(f"unknown latency statistic {statistic!r}: use latency.statistic=p10 or median")
    return statistic


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise MeasureError(f"unknown latency backend {backend!r}: use one of {', '.join(BACKENDS)} "
                           f"(e.g. latency.backend=onnxruntime)")
    if backend == "executorch":  # an optional extra: say so before anything is built or timed
        from .executorch import MISSING, available

        if not available():
            raise MeasureError(MISSING)
    return backend


def measure_latency(arch_or_module, *, backend: str = "onnxruntime", input_size: int = 224, batch: int = 1,
                    threads: int = 1, channels_last: bool = False, warmup: int = 10, repeats: int = 50,
                    max_rel_spread: float = 0.05, max_rounds: int = 4, input_shape=None,
                    name: str | None = None) -> Latency:
    """Latency of one forward pass of ``arch_or_module`` (an ``ArchSpec`` or an ``nn.Module``).

    The input is ``(batch, 3, input_size, input_size)`` unless ``input_shape`` is given (a block
    of the lookup table sees its own shape). ``channels_last`` applies to the torch backend only:
    onnxruntime and ExecuTorch (XNNPACK) pick their own layout. ``name`` says what a failed export was
    (a table entry's key).
    """
    check_backend(backend)
    for key, value, low in (("threads", threads, 1), ("repeats", repeats, 3), ("batch", batch, 1),
                            ("warmup", warmup, 0), ("max_rounds", max_rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MeasureError(f"{key} must be an integer >= {low}, got {value!r}")
    shape = tuple(input_shape) if input_shape is not None else (batch, 3, input_size, input_size)
    run = make_runner(arch_or_module, backend=backend, shape=shape, threads=threads, channels_last=channels_last,
                      name=name)
    return time_runner(run, backend=backend, threads=threads, warmup=warmup, repeats=repeats,
                       max_rel_spread=max_rel_spread, max_rounds=max_rounds)


def make_runner(arch_or_module, *, backend: str, shape: tuple[int, ...], threads: int = 1,
                channels_last: bool = False, name: str | None = None):
    """A no-argument callable running one forward pass on a fixed random input of ``shape``; build it
    once to time the same network again without re-exporting it (the lookup table's probe does)."""
    module = build_model(arch_or_module) if isinstance(arch_or_module, ArchSpec) else arch_or_module
    if not isinstance(module, nn.Module):
        raise TypeError(f"measure_latency needs an ArchSpec or nn.Module, got {type(arch_or_module).__name__}")
    module = module.eval()
    x = torch.randn(*shape)
    from .backends import RUNNERS

    return RUNNERS[check_backend(backend)](module, x, threads=threads, channels_last=channels_last, name=name)


def time_runner(run, *, backend: str, threads: int = 1, warmup: int = 10, repeats: int = 50,
                max_rel_spread: float = 0.05, max_rounds: int = 4) -> Latency:
    """Time ``run`` (from ``make_runner``) with the protocol of the module docstring."""
    with _torch_threads(threads), torch.inference_mode():
        return _time(run, backend, warmup, repeats, max_rel_spread, max_rounds)


def time_paired(run, probe, *, backend: str, threads: int = 1, warmup: int = 10,
                small=None) -> tuple[Latency, float, dict | None]:
    """Time ``run`` in alternation with the probe's runner (``measure.runner.paired_timing``): its latency as
    timed, the probe's p10 (ms) over the same pairs (the speed the machine ran at meanwhile), and, when
    ``small`` (the small probe's runner) is given, ``{"ratio": run's median p10 ratio to it, "ms": its p10}``
    from pairs with it (else None)."""
    with _torch_threads(threads), torch.inference_mode():
        t = paired_timing(run, probe, warmup, small=small)
    sized = {"ratio": t["small_ratio"], "ms": t["small_ms"]} if small is not None else None
    return Latency(t["median_ms"], t["spread_ms"], t["repeats"], backend, t["p10_ms"]), t["probe_ms"], sized


def _time(run, backend: str, warmup: int, repeats: int, max_rel_spread: float, max_rounds: int) -> Latency:
    t = time_callable(run, warmup, repeats, max_rel_spread, max_rounds)  # the one timing loop, shared with targets
    return Latency(t["median_ms"], t["spread_ms"], t["repeats"], backend, t["p10_ms"])


@contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
