"""Wall-clock latency of a network (or one block) on a CPU backend: eager torch or onnxruntime.

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

import ctypes
import ctypes.util
import functools
import io
import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from core.errors import UserError
from space import ArchSpec, build_model, format_arch

BACKENDS = ("onnxruntime", "torch")


class MeasureError(UserError):
    """A measurement that cannot be made as asked; the message names the problem and the fix."""


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


STATISTICS = ("p10", "median")


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise MeasureError(f"unknown latency statistic {statistic!r}: use latency.statistic=p10 or median")
    return statistic


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise MeasureError(f"unknown latency backend {backend!r}: use one of {', '.join(BACKENDS)} "
                           f"(e.g. latency.backend=onnxruntime)")
    return backend


def measure_latency(arch_or_module, *, backend: str = "onnxruntime", input_size: int = 224, batch: int = 1,
                    threads: int = 1, channels_last: bool = False, warmup: int = 10, repeats: int = 50,
                    max_rel_spread: float = 0.05, max_rounds: int = 4, input_shape=None,
                    name: str | None = None) -> Latency:
    """Latency of one forward pass of ``arch_or_module`` (an ``ArchSpec`` or an ``nn.Module``).

    The input is ``(batch, 3, input_size, input_size)`` unless ``input_shape`` is given (a block
    of the lookup table sees its own shape). ``channels_last`` applies to the torch backend only:
    onnxruntime picks its own layout. ``name`` says what a failed export was (a table entry's key).
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
    if check_backend(backend) == "torch":
        return _torch_runner(module, x, channels_last)
    return _ort_runner(module, x, threads, name)


def time_runner(run, *, backend: str, threads: int = 1, warmup: int = 10, repeats: int = 50,
                max_rel_spread: float = 0.05, max_rounds: int = 4) -> Latency:
    """Time ``run`` (from ``make_runner``) with the protocol of the module docstring."""
    with _torch_threads(threads), torch.inference_mode():
        return _time(run, backend, warmup, repeats, max_rel_spread, max_rounds)


def _time(run, backend: str, warmup: int, repeats: int, max_rel_spread: float, max_rounds: int) -> Latency:
    for _ in range(warmup):
        run()
    times: list[float] = []
    for _ in range(max_rounds):
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        median, spread = _median_iqr(times)
        if spread <= max_rel_spread * median:
            break
    p10 = statistics.quantiles(times, n=10, method="inclusive")[0]
    return Latency(median * 1e3, spread * 1e3, len(times), backend, p10 * 1e3)


def _median_iqr(values: list[float]) -> tuple[float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q3 - q1


@contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def steady_allocator() -> bool:
    """Pin glibc malloc's mmap and trim thresholds for this process; True when applied.

    By default glibc serves a large block (an expanded activation at 112x112 is ~3 MB) with a fresh
    ``mmap`` or from the heap depending on the history of earlier frees, so the same block timed twice
    in eager torch takes 0.8 ms or 3.7 ms (page faults on every call), and a table entry timed alone
    disagrees with the same block inside a network. Fixed thresholds keep freed activations in the
    heap, as the caching allocators (jemalloc, tcmalloc) of a deployed runtime do; the cost is memory
    kept by the process. onnxruntime has its own arena and needs none of this.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 256 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to pin
        return False


def _torch_runner(module: nn.Module, x: torch.Tensor, channels_last: bool):
    steady_allocator()
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: module(x)


def export_onnx(module: nn.Module, x: torch.Tensor, *, name: str | None = None, dynamic_batch: bool = False,
                output_name: str = "output") -> bytes:
    """ONNX bytes of ``module`` traced on ``x``: the one exporter (latency measurement, NetAdapt's final network).

    The TorchScript exporter (``dynamo=False``) takes ~0.1-1 s per network here against ~20 s for
    the dynamo exporter, and its graphs run as fast under onnxruntime; it is deprecated in torch 2.13
    (warnings silenced). A failure is a ``MeasureError`` naming the network (``name``, else the arch
    string of a ``space.build_model`` network) and the cause: there is no fallback exporter.
    """
    buf = io.BytesIO()
    axes = {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=17, do_constant_folding=True,
                              input_names=["input"], output_names=[output_name], dynamic_axes=axes)
        except Exception as e:  # noqa: BLE001 -- whatever the exporter raises, the user gets one line
            cause = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise MeasureError(f"cannot export {network_name(module, name)} to ONNX: {type(e).__name__}"
                               f"{': ' + cause if cause else ''}") from e
    return buf.getvalue()


def network_name(module: nn.Module, name: str | None = None) -> str:
    """How an error names what was exported: ``name``, the arch string of a bneck network, or the class."""
    if name:
        return name
    arch = getattr(module, "arch", None)
    if isinstance(arch, ArchSpec):
        return f"network {format_arch(arch)!r}"
    return f"module {type(module).__name__}"


def _ort_runner(module: nn.Module, x: torch.Tensor, threads: int, name: str | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # folds BN, fuses activations
    opts.log_severity_level = 3
    session = ort.InferenceSession(export_onnx(module, x, name=name), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feed = {name: x.numpy()}
    return lambda: session.run(None, feed)
