"""Where computation runs: device choice, host memory checks and the process group of a ``torchrun`` launch.

Training and generation both run in one process or under ``torchrun
--nproc_per_node=K``; this module is what they share to pick a device and
join the group (gloo on CPU, nccl on GPU) that ``torchrun`` described in the
environment (``WORLD_SIZE``, ``LOCAL_RANK``, ...).
"""

from __future__ import annotations

import contextlib
import os

import psutil
import torch
import torch.distributed as dist

__all__ = ["select_device", "process_group", "format_bytes", "check_memory"]


def select_device(device=None) -> torch.device:
    """``device`` as a :class:`torch.device`; None picks CUDA when available, else the CPU.

    Raises
    ------
    ValueError
        If the name is not a device, or a CUDA device is asked for and CUDA is not available.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device name; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available; use device='cpu'")
    return device


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join the process group torchrun set up for the ``with`` block; yields ``(rank, world, device)``.

    Outside torchrun (``WORLD_SIZE`` unset or 1) this yields ``(0, 1,
    device)`` and does nothing else.  Under torchrun on CUDA, each process
    takes the GPU of its ``LOCAL_RANK``.  A group this call created is left
    together (a barrier, when the block ends without an error) and then
    destroyed: a process that tears its group down while another still
    talks to it is aborted by gloo ("terminate called without an active
    exception").
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield 0, 1, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size(), device
        if created:
            dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()


def format_bytes(n: float) -> str:
    """A byte count as MiB or GiB for messages."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def check_memory(needed: int, *, what: str) -> None:
    """Raise a ``ValueError`` saying how much memory ``what`` needs when ``needed`` bytes are not available."""
    available = psutil.virtual_memory().available
    if needed > available:
        raise ValueError(
            f"{what} needs about {format_bytes(needed)} of memory but only {format_bytes(available)} is "
            "available; use a smaller size or fewer frames"
        )
