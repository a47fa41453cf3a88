"""Which GPU a worker trains on: ``LOCAL_RANK`` under torchrun, else a slot per worker, round robin over GPUs.

Workers of a study are separate processes on one storage (``python -m search.run`` started N times). With
``train.device=cuda`` (or ``auto`` on a host with CUDA) each claims the first free slot of
``n_gpus x train.workers_per_gpu``: an exclusive ``flock`` on ``<study folder>/gpu-slots/<slot>.lock``,
held for the life of the process and released by the OS on any death, so a restarted worker takes the
slot back. Slot ``s`` trains on GPU ``s mod n_gpus``: the first workers spread over the GPUs, later ones
share them. When every slot is taken, the worker stops with a message: more workers than the user
allowed per GPU would slow all of them. ``cuda:<n>``, ``cpu`` and ``mps`` are taken as given.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import torch

from .errors import DeviceError
from .loop import resolve_device

SLOTS = "gpu-slots"


def place(name: str, *, cuda: bool, n_gpus: int, local_rank: int | None = None, slot: int | None = None) -> str:
    """The device of a worker (pure): ``name`` as given unless it asks for "a GPU" (``cuda``, or ``auto``
    with CUDA); then ``cuda:<LOCAL_RANK>`` under torchrun, else ``cuda:<slot mod n_gpus>``."""
    if name not in ("cuda", "auto") or not cuda:
        return "cpu" if name == "auto" else name
    if n_gpus < 1:
        raise DeviceError("CUDA is available but shows no GPU: check CUDA_VISIBLE_DEVICES, or pass train.device=cpu")
    if local_rank is not None:
        return f"cuda:{local_rank % n_gpus}"
    return f"cuda:{(slot or 0) % n_gpus}"


def claim_slot(folder: Path, n_slots: int, *, fix: str = "") -> tuple[int, object]:
    """(the first free slot of ``n_slots`` under ``folder``, the open file holding its lock: keep it open)."""
    d = Path(folder) / SLOTS
    d.mkdir(parents=True, exist_ok=True)
    for s in range(n_slots):
        f = open(d / f"{s}.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")  # for a person looking; the lock is what counts
        f.flush()
        return s, f
    raise DeviceError(f"all {n_slots} GPU slots of {d} are taken by running workers{fix}")


def worker_device(name: str, folder: Path | None, workers_per_gpu: int = 1) -> tuple[str, object | None]:
    """(the device this worker trains on, the slot lock to keep open or None). Refuses a device the host lacks.
    ``folder`` None: a process that is the only one (NetAdapt) takes slot 0 without a lock."""
    resolve_device(name)  # cuda on a host without it: one line, exit 2
    cuda = torch.cuda.is_available()
    if name not in ("cuda", "auto") or not cuda:
        return place(name, cuda=cuda, n_gpus=0), None
    n_gpus = torch.cuda.device_count()
    rank = os.environ.get("LOCAL_RANK")
    if rank is not None:
        return place(name, cuda=True, n_gpus=n_gpus, local_rank=int(rank)), None
    if folder is None:
        return place(name, cuda=True, n_gpus=n_gpus, slot=0), None
    slot, held = claim_slot(folder, n_gpus * workers_per_gpu,
                            fix=f" ({n_gpus} GPU(s) x train.workers_per_gpu={workers_per_gpu}): raise "
                                f"train.workers_per_gpu or start fewer workers")
    return place(name, cuda=True, n_gpus=n_gpus, slot=slot), held
