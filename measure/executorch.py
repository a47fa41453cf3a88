"""The ExecuTorch backend: the network exported with ``torch.export``, lowered to the XNNPACK delegate and
run by the ExecuTorch runtime, i.e. the kernels (XNNPACK) behind the phone latencies MobileNetV3 was
designed against. An optional extra: ``pip install -e '.[executorch]'`` (bneck is installed from its
checkout, not from an index, so the error names that command).

Lowering costs seconds per table entry and about half a minute per whole network, against well under a
second for the ONNX export, so lowered programs are cached on disk (``cache_dir()``), keyed by the
module's structure, the input shape and the torch and executorch versions: a table timed in several
passes, over several runs, the probe timed in every run and ``latency=measured`` re-timing a network
all lower each structure once. The key leaves out the weights, so a cached program runs the weights of
the first module of that structure: right for timing (dense float kernels cost the same whatever the
values), wrong for anything that reads the outputs.

A cache entry is ``<key>.pte`` beside ``<key>.json`` (its key and the SHA-256 of its bytes). An entry
whose record is missing, names another key or another hash (a truncated, swapped or edited file) is
not run: it is lowered again, with a warning naming the reason.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from core.files import write_atomic

from .errors import MeasureError
from .onnx import network_name

MISSING = ("latency.backend=executorch needs the executorch extra: pip install -e '.[executorch]' "
           "(in the bneck checkout)")
exports = 0  # programs lowered by this process (tests check that a cached structure is not lowered again)


def available() -> bool:
    """Whether the executorch package is installed (without importing it: that costs seconds)."""
    return importlib.util.find_spec("executorch") is not None


def cache_dir() -> Path:
    """``$BNECK_ET_CACHE``, else ``$XDG_CACHE_HOME/bneck/executorch`` (``~/.cache/...``). Per user, not per
    table: a program depends on neither the machine nor the table that times it."""
    if os.environ.get("BNECK_ET_CACHE"):
        return Path(os.environ["BNECK_ET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bneck" / "executorch"


def structure_key(module: nn.Module, shape: tuple[int, ...]) -> str:
    """A hash of what the lowered program depends on, weights aside: every submodule's class, its plain
    attributes (channels, kernel, stride, eps, flags such as a residual connection) and parameter
    shapes, the input shape, and the torch and executorch versions."""
    parts = [torch.__version__, metadata.version("executorch"), tuple(shape)]
    for path, m in module.named_modules():
        attrs = sorted((k, v) for k, v in vars(m).items()
                       if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple)))
        shapes = [(k, tuple(p.shape)) for k, p in m.named_parameters(recurse=False)]
        parts.append((path, f"{type(m).__module__}.{type(m).__qualname__}", attrs, shapes))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def lower(module: nn.Module, x: torch.Tensor, *, name: str | None = None) -> bytes:
    """The .pte bytes of ``module`` on ``x``: ``torch.export``, every supported op to XNNPACK. A failure is a
    ``MeasureError`` naming the network; there is no fallback."""
    global exports
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations inside executorch's imports, not ours to fix
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same inside torch.export and the lowering
            exported = torch.export.export(module, (x,))
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as e:  # noqa: BLE001 -- whatever export or lowering raises, the user gets one line
        cause = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise MeasureError(f"cannot export {network_name(module, name)} to ExecuTorch: {type(e).__name__}"
                           f"{': ' + cause if cause else ''}") from e
    exports += 1
    return program.buffer


def cached_program(module: nn.Module, x: torch.Tensor, *, name: str | None = None) -> bytes:
    """``lower(module, x)``, read from ``cache_dir()`` when this structure was lowered before."""
    return load_or_build(cache_dir(), structure_key(module, tuple(x.shape)), lambda: lower(module, x, name=name))


def entry_record(key: str, data: bytes) -> str:
    """What is stored beside ``<key>.pte``: the key and the hash of the program's bytes."""
    return json.dumps({"key": key, "sha256": hashlib.sha256(data).hexdigest()})


def entry_problem(key: str, data: bytes, record: str | None) -> str | None:
    """Why the cached bytes ``data`` may not be run as the program of ``key`` (None: they may)."""
    if record is None:
        return "it has no record of its hash"
    try:
        stored = json.loads(record)
        stored_key, digest = stored["key"], stored["sha256"]
    except (ValueError, KeyError, TypeError):
        return "its record is unreadable"
    if stored_key != key:
        return f"its record names another key ({str(stored_key)[:24]})"
    if hashlib.sha256(data).hexdigest() != digest:
        return "its bytes do not match the hash recorded when it was lowered"
    return None


def load_or_build(folder: Path, key: str, build) -> bytes:
    """The program of ``key`` from ``folder`` if its entry checks out, else ``build()``, stored with its record."""
    pte, record = folder / f"{key}.pte", folder / f"{key}.json"
    if pte.is_file():
        data = pte.read_bytes()
        problem = entry_problem(key, data, record.read_text() if record.is_file() else None)
        if problem is None:
            return data
        warnings.warn(f"ExecuTorch cache entry {pte} is lowered again: {problem}", stacklevel=2)
    data = build()
    # Program first, record second: a reader between the two sees a mismatch and rebuilds, never runs
    # unchecked bytes. Two processes lowering one structure write the same pair.
    write_atomic(pte, data)
    write_atomic(record, entry_record(key, data))
    return data


def et_runner(module: nn.Module, x: torch.Tensor, *, threads: int = 1, channels_last: bool = False,
              name: str | None = None):
    """ExecuTorch with the XNNPACK delegate, ``threads`` threads. ``channels_last`` does not apply: XNNPACK
    works in NHWC whatever the layout of the input, as onnxruntime picks its own."""
    if not available():
        raise MeasureError(MISSING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the runtime bindings warn that their API is experimental
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
    except ImportError as e:  # installed but broken (e.g. built against another torch)
        raise MeasureError(f"{MISSING} ({type(e).__name__}: {e})") from e

    data = cached_program(module, x, name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as above, on every call of the thread-pool functions
        # XNNPACK runs on ExecuTorch's one process-wide thread pool, sized to the cores by default; the
        # runtime has no per-method setting, so resize the pool. Before the method is loaded: its delegate
        # keeps a pointer to the pool, and a reset after the load left it dangling (the heap corrupted and the
        # process aborted later, in about 1 run in 3 of tests/test_executorch_backend.py).
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
        program = Runtime.get().load_program(data)
        method = program.load_method("forward")
    inputs = [x]

    def run():
        return method.execute(inputs)

    run.program = program  # the method's memory belongs to its program: keep it alive as long as the runner
    return run
