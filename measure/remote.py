"""Latency timed on a target machine over SSH: ``latency.target=ssh://user@host[:port]``.

The host builds and exports what must be timed (ONNX for onnxruntime, ``.pte`` for ExecuTorch), then
runs one ``ssh`` per batch of entries: the user's own OpenSSH client (its config, keys, agent, jump
hosts and known_hosts), with ``BatchMode=yes`` (never a password prompt) and
``StrictHostKeyChecking=yes``. The remote command is ``<target_python> -c <bootstrap>``; the bootstrap
reads ``measure/runner.py`` from stdin and runs it, so the target needs python3, numpy and the runtime,
not bneck or torch. The runner answers with JSON lines (``measure.runner``), which ``RemoteTarget.timings``
turns into the events ``LatencyTable._sweep`` consumes: the table converts and saves them exactly as it
does local timings, once per probe timing, so a dropped connection loses at most the timings since the
last probe.

``$BNECK_SSH_CONFIG`` names an ssh_config file passed as ``ssh -F`` (the tests use their own); by
default ssh reads ``~/.ssh/config``. Every failure (host unknown or its key changed, key refused,
host unreachable, runtime missing, runner dead, connection dropped, silence past ``SILENCE_S``) is a
``MeasureError``: one line naming the problem and the fix.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shlex
import subprocess
import threading
from pathlib import Path

import torch

from .address import check_python, parse_target
from .entries import Entry, is_network
from .errors import MeasureError
from .latency import Latency
from .probe import block_reference

BATCH = 64  # entries per ssh call: ~1-2 s of connection, interpreter and probe set-up against tens of seconds
MAX_BATCH_BYTES = 256 << 20
SILENCE_S = 120.0  # the runner speaks every few seconds (heartbeat); this much silence is a hung target
BACKENDS = ("onnxruntime", "executorch")
RUNNER = Path(__file__).with_name("runner.py")
BOOTSTRAP = ("import sys;i=sys.stdin.buffer;n=int(i.readline());g={'__name__':'bneck_runner'};"
             "exec(compile(i.read(n),'bneck_runner.py','exec'),g);sys.exit(g['main']())")


_OPEN: dict[tuple, RemoteTarget] = {}


def open_target(url: str, python: str = "python3", backend: str = "onnxruntime") -> RemoteTarget | None:
    """The target ``url`` names (one per process and settings: its hello is asked once), or None for local."""
    parts = parse_target(url)
    if parts is None:
        return None
    check_python(python)
    if backend not in BACKENDS:
        raise MeasureError(f"latency.backend={backend} cannot time on a target (it needs torch there): use "
                           f"latency.backend=onnxruntime (or executorch where the target has its runtime)")
    key = (url, python, backend, os.environ.get("BNECK_SSH_CONFIG"))
    if key not in _OPEN:
        _OPEN[key] = RemoteTarget(url, python, backend, **parts)
    return _OPEN[key]


class RemoteTarget:
    """A machine reached with ``ssh``; ``machine`` and ``describe()`` come from its runner's hello."""

    def __init__(self, url: str, python: str, backend: str, *, user: str | None, host: str, port: int | None):
        self.url, self.python, self.backend = url, python, backend
        self.user, self.host, self.port = user, host, port
        self._hello: dict | None = None
        self._probe: dict[tuple, tuple[str, bytes]] = {}  # probe programs per (shape, which): exported once per process

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def machine(self) -> str:
        return self.hello()["machine"]

    def describe(self) -> dict:
        h = self.hello()
        return {"url": self.url, "python": self.python, "machine": h["machine"], "cpu": h["cpu"], "cpus": h["cpus"],
                "cache": h.get("cache"), "l2": h.get("l2"),
                "os": h["os"], "runtime": h["runtime"], "runner_python": h["python"]}

    def hello(self) -> dict:
        """What the target's runner reports (asked once): checks reachability, keys and the runtime."""
        if self._hello is None:
            for event in self._call({"backend": self.backend, "items": None}, {}):
                if event["event"] == "hello":
                    self._hello = event
        return self._hello

    # -- timing ------------------------------------------------------------------------------------------
    def timings(self, table, order: list[Entry]):
        """``LatencyTable._sweep``'s events for ``order``, timed on the target in batches: per batch the
        probe (or, for a new table, ``("reference", timings)``), the entries, the probe again when due."""
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            items, programs, size = [], {}, 0
            for e in batch:
                shape = e.input_shape(table.batch)
                data = self._export(e.build(), shape, f"latency-table entry {e.key!r}")
                if size + len(data) > MAX_BATCH_BYTES and items:  # rarely: a batch of very large networks
                    yield from self._run_batch(table, items, programs)
                    items, programs, size = [], {}, 0
                digest = hashlib.sha256(data).hexdigest()
                programs[digest] = data
                size += len(data)
                items.append({"key": e.key, "sha256": digest, "shape": list(shape), "entry": e,
                              "paired": is_network(e.key)})
            yield from self._run_batch(table, items, programs)

    def reference_timings(self, table) -> tuple[list[float], float | None]:
        """Probe timings for a new table's unit (``measure.probe.REFERENCE_TIMINGS`` of them) and the probes' ratio."""
        for kind, *what in self._run_batch(table, [], {}, reference=True):
            if kind == "reference":
                return what[0], what[1]
        raise MeasureError(f"the runner on {self.login} sent no reference timings: rerun")

    def _run_batch(self, table, items: list[dict], programs: dict, reference: bool = False):
        from .probe import INTERVAL_S, QUIET_SPREAD, REFERENCE_TIMINGS, REFERENCE_TRIES

        shape = (table.batch, 3, table.input_size, table.input_size)
        probe_digest, probe_data = self._probe_program(shape)
        programs = {probe_digest: probe_data, **programs}
        probe = {"sha256": probe_digest}
        if reference or table.reference is None or any(it["paired"] for it in items):  # networks (and a new unit)
            # are timed against the small probe too
            small_digest, small_data = self._probe_program(shape, "small")
            programs[small_digest] = small_data
            probe["small"] = small_digest
        if not all(it["paired"] for it in items):  # every other entry is timed against the reference block
            block_shape = block_reference().input_shape(table.batch)
            block_digest, block_data = self._probe_program(block_shape, "block")
            programs[block_digest] = block_data
            probe["block"] = {"sha256": block_digest, "shape": list(block_shape)}
        header = {"backend": self.backend, "threads": table.threads, "protocol": table.protocol,
                  "probe": {**probe, "shape": list(shape), "interval_s": INTERVAL_S,
                            "reference": REFERENCE_TIMINGS if (reference or table.reference is None) else 0,
                            "tries": REFERENCE_TRIES, "quiet": QUIET_SPREAD},
                  "items": [{k: v for k, v in it.items() if k != "entry"} for it in items]}
        by_key = {it["key"]: it["entry"] for it in items}
        cache = {probe_digest, probe.get("small"), (probe.get("block") or {}).get("sha256")} - {None}
        for event in self._call(header, programs, cache=cache):
            kind = event["event"]
            if kind == "timed":
                lat = Latency(event["median_ms"], event["spread_ms"], event["repeats"], self.backend, event["p10_ms"])
                if event.get("block"):  # an entry, timed paired with the reference block
                    yield "block", by_key[event["key"]], lat, event["probe_ms"]
                elif "probe_ms" in event:  # a network, timed paired with the probe (and the small probe)
                    small = {"ratio": event["small_ratio"], "ms": event["small_ms"]} if "small_ratio" in event else None
                    yield "paired", by_key[event["key"]], lat, event["probe_ms"], small
            elif kind == "probe":
                yield "probe", event["ms"]
            elif kind == "reference":
                yield "reference", event["timings"], event.get("small_large")

    def _probe_program(self, shape: tuple, which: str = "large") -> tuple[str, bytes]:
        """The probe (``measure.probe.PROBE``; ``small``: ``SMALL_PROBE``; ``block``: the reference block
        ``BLOCK``) with fixed weights, so its bytes, and the target's cached copy, are the same in every run."""
        if (shape, which) not in self._probe:
            from space import V3_LARGE, V3_SMALL, build_model

            with torch.random.fork_rng():
                torch.manual_seed(0)
                module = (block_reference().build() if which == "block"
                          else build_model(V3_SMALL if which == "small" else V3_LARGE))
            name = {"large": "the speed probe", "small": "the small speed probe", "block": "the reference block"}
            data = self._export(module, shape, name[which])
            self._probe[shape, which] = (hashlib.sha256(data).hexdigest(), data)
        return self._probe[shape, which]

    def _export(self, module, shape, name: str) -> bytes:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            x = torch.randn(*shape)
        module = module.eval()
        if self.backend == "executorch":
            from .executorch import MISSING, available, cached_program

            if not available():
                raise MeasureError(MISSING)
            return cached_program(module, x, name=name)
        from .onnx import export_onnx

        return export_onnx(module, x, name=name)

    # -- transport ----------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The ssh command line: the user's client and config, never a password prompt, known hosts only."""
        cmd = ["ssh"]
        if os.environ.get("BNECK_SSH_CONFIG"):
            cmd += ["-F", os.environ["BNECK_SSH_CONFIG"]]
        cmd += ["-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self.port:
            cmd += ["-p", str(self.port)]
        return [*cmd, self.login, f"{shlex.quote(self.python)} -u -c {shlex.quote(BOOTSTRAP)}"]

    def _call(self, header: dict, programs: dict[str, bytes], cache: set[str] = frozenset()):
        """Run one batch; yield the runner's events until ``done``. Every way it can fail is a MeasureError."""
        header = {**header, "blobs": [{"sha256": d, "size": len(b), "cache": d in cache} for d, b in programs.items()]}
        source = RUNNER.read_bytes()
        proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        lines: queue.Queue = queue.Queue()
        stderr: list[bytes] = []
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
        errors = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
        errors.start()
        got, started = 0, False
        try:
            try:
                proc.stdin.write(b"%d\n" % len(source) + source + json.dumps(header).encode() + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # the reason is in ssh's exit status and stderr, read below
            while True:
                try:
                    line = lines.get(timeout=SILENCE_S)
                except queue.Empty:
                    proc.kill()
                    raise MeasureError(f"the target {self.login} said nothing for {SILENCE_S:.0f} s (hung runner or "
                                       f"network): the timings received are kept; check the target and rerun to "
                                       f"resume") from None
                if line is None:
                    break
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # not ours (a login banner or a shell's noise)
                kind = event.get("event")
                if kind == "error":
                    raise MeasureError(self._runner_error(event))
                if kind == "hello":
                    started = True
                    try:
                        for d in event["missing"]:
                            proc.stdin.write(programs[d])
                        proc.stdin.close()
                    except (BrokenPipeError, OSError):
                        pass
                if kind == "done":
                    proc.wait(timeout=30)
                    return
                if kind in ("timed", "probe", "reference"):
                    got += kind == "timed"
                yield event
            proc.wait(timeout=30)
            errors.join(timeout=30)  # ssh has exited, but its last words may still be on their way to `stderr`
            raise MeasureError(self._failure(proc.returncode, b"".join(stderr).decode(errors="replace"), started, got))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def _runner_error(self, event: dict) -> str:
        if event.get("kind") == "runtime":
            need = "numpy and onnxruntime" if self.backend == "onnxruntime" else "executorch"
            return (f"{self.python} on {self.login} cannot import the {self.backend} runtime ({event['message']}): "
                    f"install it there (pip install {need}) or point latency.target_python at an interpreter with it")
        return f"the runner on {self.login} failed: {event.get('message')}"

    def _failure(self, rc: int, stderr: str, started: bool, got: int) -> str:
        """One line for an ssh or runner failure: what happened and the fix."""
        where = f"{self.host}" + (f" port {self.port}" if self.port else "")
        ssh_login = f"ssh {'-p ' + str(self.port) + ' ' if self.port else ''}{self.login}"
        kept = " (the timings received are saved: rerun the same command to resume)" if started else ""
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key for" in stderr and "has changed" in stderr:
            return (f"the host key of {where} has changed since it was accepted (a reinstalled target, or someone "
                    f"in between): check it, then remove the old key with `ssh-keygen -R {self._known_name()}` and "
                    f"connect once with `{ssh_login}`{kept}")
        if "Host key verification failed" in stderr or re.search(r"No \S+ host key is known", stderr):
            return (f"{where} is not in your known_hosts (bneck checks host keys strictly): connect once with "
                    f"`{ssh_login}`, check and accept its key, then rerun")
        if "Permission denied" in stderr:
            return (f"{self.login} refused your key (bneck never sends a password): install your public key there "
                    f"with `ssh-copy-id {'-p ' + str(self.port) + ' ' if self.port else ''}{self.login}` or load it "
                    f"into your agent, then rerun")
        if rc == 127 or "command not found" in stderr or "No such file or directory" in stderr and not started:
            return (f"latency.target_python={self.python} was not found on {self.login}: install python3 there or pass "
                    f"the interpreter's path (e.g. latency.target_python=/home/pi/venv/bin/python)")
        unreachable = ("Could not resolve hostname", "Connection refused", "No route to host", "Network is unreachable",
                       "Connection timed out", "Operation timed out")
        if not started and any(s in stderr for s in unreachable):
            return f"cannot reach {where} ({_last_line(stderr)}): check the host, port and network, then rerun"
        if started and any(s in stderr for s in ("closed", "Broken pipe", "reset", "Timeout", "not responding")):
            why = _last_line(stderr)
            return f"the connection to {where} dropped after {got} timings of this batch ({why}){kept}"
        if started:  # ssh says nothing when the remote process is killed (exit 255): out of memory, say
            how = "killed by a signal" if rc == 255 and not stderr.strip() else f"exit {rc}: {_last_line(stderr)}"
            return f"the runner on {self.login} died ({how}){kept}; check the target's memory and runtime"
        return f"ssh to {where} failed (exit {rc}: {_last_line(stderr) or 'no message'}): check `{ssh_login}` works"

    def _known_name(self) -> str:
        return f"[{self.host}]:{self.port}" if self.port else self.host


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1][:200] if lines else ""
