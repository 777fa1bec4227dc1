"""Where computation runs: device choice and the process group of a ``torchrun`` launch.

Training and generation both run in one process or under ``torchrun
--nproc_per_node=K``; this module is what they share to pick a device and
join the group (gloo on CPU, nccl on GPU) that ``torchrun`` described in the
environment (``WORLD_SIZE``, ``LOCAL_RANK``, ...).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["select_device", "join_process_group"]


def select_device(device=None) -> torch.device:
    """``device`` as a :class:`torch.device`; None picks CUDA when available, else the CPU.

    Raises
    ------
    ValueError
        If a CUDA device is asked for and CUDA is not available.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available; use device='cpu'")
    return device


def join_process_group(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """Join the process group torchrun set up; returns ``(rank, world, device, created)``.

    Outside torchrun (``WORLD_SIZE`` unset or 1) this is ``(0, 1, device,
    False)``.  Under torchrun on CUDA, each process takes the GPU of its
    ``LOCAL_RANK``.  ``created`` says whether this call created the group, so
    the caller knows to destroy it when done.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), device, created
