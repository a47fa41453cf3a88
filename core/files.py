"""Atomic file writes, shared by every package that writes under ``results_dir``.

A file is written to a temporary sibling, flushed to disk and moved over its target, so readers
and a crash at any moment see either the old file or the new one, never half of one. The
temporary name carries host and pid: a writer killed mid-write leaves its temporary file behind,
and the next writer of the same file on that host removes it once that pid is gone.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

_HOST = socket.gethostname()
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path, data: str | bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # the rename itself survives a power cut


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sweep_dead_temps(path: Path) -> None:
    prefix = f".{path.name}.{_HOST}-"
    for tmp in path.parent.glob(f"{prefix}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_torch(path, obj) -> None:
    """``torch.save(obj)`` to ``path``, atomically as :func:`write_atomic`. torch is imported here, not when
    ``core`` is: a command that rejects its arguments answers before torch loads."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def read_jsonl(path) -> list[dict]:
    """The complete lines of a JSON-lines file, none when it is missing: a last line cut by a kill is left out
    (the piece it recorded is done again)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
