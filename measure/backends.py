"""Latency backends: each turns (module, input) into a no-argument callable that runs one forward pass.

A new backend is one module under ``measure/`` with a runner function of this signature, registered in
``RUNNERS`` below and named in ``measure.names.BACKENDS``; ``latency.backend=<name>`` selects it, and
lookup tables are kept per backend.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch
from torch import nn

from .onnx import ort_runner


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


def torch_runner(module: nn.Module, x: torch.Tensor, *, threads: int = 1, channels_last: bool = False,
                 name: str | None = None):
    """Eager torch (threads are set by the timer around the call)."""
    steady_allocator()
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: module(x)


def executorch_runner(module: nn.Module, x: torch.Tensor, **options):
    """ExecuTorch + XNNPACK (``measure.executorch``), imported on first use: the extra is optional, and
    importing it costs seconds."""
    from .executorch import et_runner

    return et_runner(module, x, **options)


RUNNERS = {"torch": torch_runner, "onnxruntime": ort_runner, "executorch": executorch_runner}
