"""The timing runner: what times a network on this machine or on a target reached over SSH.

This module needs only the standard library at import, numpy and onnxruntime (or the ExecuTorch runtime
for ``.pte`` programs) to time: the host sends its source to the target with each batch
(``measure.remote``), so nothing of bneck, and no torch, has to be installed there. The local backends
use the same functions (``time_callable``, ``ort_session``, ``machine_id``), so a table built on a
target is timed exactly as one built here.

Protocol (``main``, one batch per process, JSON lines): the host writes a header line naming the
programs to time and their sizes; the runner answers ``hello`` (machine id, CPU, OS, runtime version
and which programs it lacks in its cache), reads those, takes the target's timing lock
(``fcntl.flock`` on ``<dir>/timing.lock``, logged in ``<dir>/runner.log``) and streams events:
``reference`` (probe timings setting a new table's unit), ``probe`` (the probe's p10 in ms), ``timed``
(one entry; a whole network is timed paired with the probe and says at what speed, ``probe_ms``, and with the
small probe when the header names one, ``small_ratio`` and ``small_ms``),
``alive`` (heartbeat), then ``done``; an ``error`` event ends a batch that cannot run.
``<dir>`` is ``$BNECK_TARGET_DIR``, else ``~/.cache/bneck-target``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time

PROTOCOL = 1
PROBE_REPEATS = 20  # the probe is timed warm with few repeats: only its p10 counts (measure.probe.REPEATS)
CACHED_PROGRAMS = 12  # probe programs kept on a target (three per input size, backend and exporter)
HEARTBEAT_S = 5.0


# -- shared with the local backends -----------------------------------------------------------------
def time_callable(run, warmup: int, repeats: int, max_rel_spread: float, max_rounds: int) -> dict:
    """Time ``run()``: ``warmup`` untimed calls, then rounds of ``repeats`` timed calls, pooling rounds
    while the IQR exceeds ``max_rel_spread`` x median (``measure.latency``). Milliseconds."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    for _ in range(max_rounds):
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
        if q3 - q1 <= max_rel_spread * median:
            break
    p10 = statistics.quantiles(times, n=10, method="inclusive")[0]
    return {"median_ms": median * 1e3, "spread_ms": (q3 - q1) * 1e3, "repeats": len(times), "p10_ms": p10 * 1e3}


PAIRS, PAIR_CALLS = 8, 10  # a network timed paired with the probe (``paired_timing``)


def paired_timing(run, probe, warmup: int, pairs: int = PAIRS, calls: int = PAIR_CALLS, small=None) -> dict:
    """Time ``run()`` in alternation with ``probe()``: ``calls`` of one, then ``calls`` of the other, ``pairs``
    times, and take the median over pairs of the ratio of their p10s (and of their medians). The machine's
    speed moves both sides of a ratio alike, so a network timed this way moved a median 0.8-1.3% between
    runs where timed alone and converted by the probe around it, 2.0-5.4% (5 runs of 16 networks,
    benchmarks/latency_lut/probe_protocol.md). Returned as a timing of ``time_callable`` (ms, the ratio times
    the probe's median p10 over the pairs) with ``probe_ms``, that p10: the speed it was timed at.

    ``small`` (the small probe's callable): ``run`` is then timed the same way against it too, and the result
    adds ``small_ratio`` (the median ratio of the p10s) and ``small_ms`` (its median p10): what
    ``measure.table`` converts a network near the small probe's size by."""
    for _ in range(warmup):
        run()
    net, ref = _pairs(run, probe, pairs, calls)
    probe_p10 = statistics.median(r["p10_ms"] for r in ref)
    probe_median = statistics.median(r["median_ms"] for r in ref)
    p10 = statistics.median(n["p10_ms"] / r["p10_ms"] for n, r in zip(net, ref)) * probe_p10
    median = statistics.median(n["median_ms"] / r["median_ms"] for n, r in zip(net, ref)) * probe_median
    out = {"median_ms": median, "spread_ms": statistics.median(n["spread_ms"] for n in net),
           "repeats": pairs * calls, "p10_ms": p10, "probe_ms": probe_p10}
    if small is not None:
        net, ref = _pairs(run, small, pairs, calls)
        out["small_ratio"] = statistics.median(n["p10_ms"] / r["p10_ms"] for n, r in zip(net, ref))
        out["small_ms"] = statistics.median(r["p10_ms"] for r in ref)
    return out


def _pairs(run, probe, pairs: int, calls: int) -> tuple[list[dict], list[dict]]:
    net, ref = [], []
    for _ in range(pairs):
        net.append(time_callable(run, 0, calls, float("inf"), 1))
        ref.append(time_callable(probe, 0, calls, float("inf"), 1))
    return net, ref


def ort_session(model: bytes, threads: int):
    """An onnxruntime CPU session: one intra-op pool of ``threads``, sequential, all graph optimisations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # folds BN, fuses activations
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def cpu_model() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return model


def cache_sizes() -> dict[int, int]:
    """This machine's CPU cache sizes in bytes by level, as core 0 sees them (its own L1 and L2, the shared last
    level), from sysfs; {} when the OS does not say."""
    sizes = {}
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(index, "level")) as f, open(os.path.join(index, "size")) as g:
                level, size = int(f.read()), g.read().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
        sizes[level] = int(size[:-1]) * units[size[-1]] if size[-1:] in units else int(size or 0)
    return {level: size for level, size in sizes.items() if size > 0}


def cache_bytes() -> int | None:
    """The size in bytes of this machine's last-level CPU cache (L3 on most servers), or None when the OS does
    not say: what the latency model's memory term ramps against (``measure.calibration``)."""
    sizes = cache_sizes()
    if sizes:
        return sizes[max(sizes)]
    try:
        return os.sysconf("SC_LEVEL3_CACHE_SIZE") or None
    except (ValueError, OSError):
        return None


def l2_bytes() -> int | None:
    """The size in bytes of one core's L2 cache, or None when the OS does not say: what the latency model's reload
    term ramps against (``measure.calibration``)."""
    size = cache_sizes().get(2)
    if size:
        return size
    try:
        return os.sysconf("SC_LEVEL2_CACHE_SIZE") or None
    except (ValueError, OSError):
        return None


def machine_id() -> str:
    """A stable name for this machine: ``$BNECK_MACHINE``, or hostname + hash of the CPU model and count."""
    if os.environ.get("BNECK_MACHINE"):
        return os.environ["BNECK_MACHINE"]
    digest = hashlib.sha1(f"{cpu_model()}|{os.cpu_count()}".encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


# -- the target side -----------------------------------------------------------------------------------
def target_dir() -> str:
    return os.environ.get("BNECK_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "bneck-target")


class Events:
    """JSON lines on stdout, one writer at a time (the heartbeat thread writes too)."""

    def __init__(self, out):
        self.out, self.lock = out, threading.Lock()

    def __call__(self, event: str, **fields) -> None:
        with self.lock:
            self.out.write(json.dumps({"event": event, **fields}) + "\n")
            self.out.flush()


def runtime(backend: str) -> tuple[str, object]:
    """(name and version, a ``load(program bytes, shape, threads) -> run`` function) of ``backend``."""
    if backend == "onnxruntime":
        import numpy as np
        import onnxruntime as ort

        def load(model: bytes, shape, threads: int):
            session = ort_session(model, threads)
            feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
            return lambda: session.run(None, feed)

        return f"onnxruntime {ort.__version__}", load
    if backend == "executorch":
        import warnings
        from importlib import metadata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch  # the ExecuTorch bindings take torch tensors: a target with ExecuTorch has torch
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

        def load(program: bytes, shape, threads: int):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if portable_lib._threadpool_get_thread_count() != threads:  # before the load: the method keeps
                    portable_lib._unsafe_reset_threadpool(threads)  # a pointer to the pool (measure/executorch.py)
                loaded = Runtime.get().load_program(program)
                method = loaded.load_method("forward")
            inputs = [torch.randn(*shape)]
            run = lambda: method.execute(inputs)
            run.program = loaded  # the method's memory belongs to its program
            return run

        return f"executorch {metadata.version('executorch')}", load
    raise ValueError(f"unknown backend {backend!r}")


def _log(folder: str, what: str) -> None:
    with open(os.path.join(folder, "runner.log"), "a") as f:
        f.write(f"{time.time():.6f} {os.getpid()} {what}\n")


def _cache(folder: str, digest: str, data: bytes | None = None) -> bytes | None:
    """Read (``data`` None) or store a program by its sha256; keeps the ``CACHED_PROGRAMS`` latest."""
    cache = os.path.join(folder, "programs")
    path = os.path.join(cache, digest)
    if data is None:
        if not os.path.isfile(path):
            return None
        os.utime(path)
        with open(path, "rb") as f:
            return f.read()
    os.makedirs(cache, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    old = sorted((os.path.join(cache, n) for n in os.listdir(cache) if not n.endswith(".tmp")), key=os.path.getmtime)
    for stale in old[:-CACHED_PROGRAMS]:
        try:
            os.remove(stale)
        except OSError:
            pass
    return data


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"the host sent {len(data)} of {n} bytes")
    return data


def main(stdin=None, stdout=None) -> int:
    stdin = stdin or sys.stdin.buffer
    emit = Events(stdout or sys.stdout)
    header = json.loads(stdin.readline())
    info = {"protocol": PROTOCOL, "machine": machine_id(), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "cache": cache_bytes(), "l2": l2_bytes(),
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version()}
    try:
        info["runtime"], load = runtime(header["backend"])
    except ImportError as e:
        emit("error", kind="runtime", message=f"{type(e).__name__}: {e}", **info)
        return 3
    folder = target_dir()
    os.makedirs(folder, exist_ok=True)
    programs = {}
    for blob in header.get("blobs", []):
        cached = _cache(folder, blob["sha256"]) if blob.get("cache") else None
        if cached is not None:
            programs[blob["sha256"]] = cached
    missing = [b for b in header.get("blobs", []) if b["sha256"] not in programs]
    emit("hello", missing=[b["sha256"] for b in missing], **info)
    for blob in missing:
        data = _read_exact(stdin, blob["size"])
        if hashlib.sha256(data).hexdigest() != blob["sha256"]:
            raise ValueError(f"program {blob['sha256'][:12]} arrived corrupted")
        programs[blob["sha256"]] = _cache(folder, blob["sha256"], data) if blob.get("cache") else data
    if header.get("items") is None:  # a hello only
        emit("done")
        return 0
    alive = threading.Event()
    threading.Thread(target=_heartbeat, args=(emit, alive), daemon=True).start()
    with open(os.path.join(folder, "timing.lock"), "a") as lock:
        _acquire(lock, folder, emit)
        try:
            _batch(header, programs, load, emit)
        finally:
            _log(folder, "released")
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_UN)
    alive.set()
    emit("done")
    return 0


def _acquire(lock, folder: str, emit) -> None:
    """The target's one timing at a time: wait for the lock, saying so (the host's silence timeout
    must not fire while another worker times)."""
    import fcntl

    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _log(folder, "waiting")
        emit("lock", state="waiting")
        fcntl.flock(lock, fcntl.LOCK_EX)
    _log(folder, "acquired")
    emit("lock", state="held")


def _heartbeat(emit, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        emit("alive")


def reference_timings(probe_ms, n: int, tries: int, quiet: float) -> list[float]:
    """``n`` probe timings, taken again up to ``tries`` times while they spread by more than ``quiet``
    ((max - min) / median); the quietest set."""
    best, best_spread = None, None
    for _ in range(tries):
        timings = [probe_ms() for _ in range(n)]
        spread = (max(timings) - min(timings)) / statistics.median(timings)
        if best is None or spread < best_spread:
            best, best_spread = timings, spread
        if spread <= quiet:
            break
    return best


def probe_ratio(small_ms, large_ms, n: int) -> float:
    """The two probes' ratio now: the median of ``n`` small / large p10s timed in turn (a new table's first
    ``small_large``, ``measure.table``)."""
    return statistics.median(small_ms() / large_ms() for _ in range(n))


def _batch(header: dict, programs: dict, load, emit) -> None:
    """Probe, entries (probe again when due and after the last), as ``LatencyTable._sweep`` does locally."""
    threads, probe = header["threads"], header["probe"]
    probe_run = load(programs[probe["sha256"]], probe["shape"], threads)
    small_run = load(programs[probe["small"]], probe["shape"], threads) if probe.get("small") else None
    block_run = None
    if probe.get("block"):  # the reference block every other entry is timed against, warmed once
        block_run = load(programs[probe["block"]["sha256"]], probe["block"]["shape"], threads)
        time_callable(block_run, 30, 3, float("inf"), 1)
    first = [True]

    def probe_ms() -> float:
        ms = time_callable(probe_run, 10 if first[0] else 3, PROBE_REPEATS, 0.05, 1)["p10_ms"]
        first[0] = False
        return ms

    if probe.get("reference"):  # a new table's unit: retried while the timings spread (measure.table._set_reference)
        timings = reference_timings(probe_ms, probe["reference"], probe.get("tries", 1), probe.get("quiet", 0.0))
        ratio = {}
        if small_run is not None:  # and the probes' ratio beside it
            def small_ms() -> float:
                return time_callable(small_run, 3, PROBE_REPEATS, 0.05, 1)["p10_ms"]

            ratio["small_large"] = probe_ratio(small_ms, probe_ms, probe["reference"])
        emit("reference", timings=timings, **ratio)
    else:
        emit("probe", ms=probe_ms())
    last = time.monotonic()
    items = header["items"]
    for i, item in enumerate(items):
        run = load(programs[item["sha256"]], item["shape"], threads)
        if item.get("paired"):  # a whole network: in alternation with the probe (measure.table._measure_paired)
            timing = paired_timing(run, probe_run, header["protocol"]["warmup"], small=small_run)
            emit("timed", key=item["key"], **timing)
        else:  # any other entry: in alternation with the reference block (measure.table._measure_block)
            emit("timed", key=item["key"], block=True, **paired_timing(run, block_run, header["protocol"]["warmup"]))
        del run
        if time.monotonic() - last >= probe["interval_s"] or i == len(items) - 1:
            emit("probe", ms=probe_ms())
            last = time.monotonic()


if __name__ == "__main__":
    sys.exit(main())
