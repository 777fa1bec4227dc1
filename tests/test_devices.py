"""cellnb.devices: device choice and the torchrun process group."""

import pytest
import torch
import torch.distributed as dist

from cellnb.devices import process_group, select_device


def test_select_device_defaults_and_refuses_missing_cuda():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="use device='cpu'"):
            select_device("cuda")


def test_outside_torchrun_there_is_one_process_and_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group(torch.device("cpu")) as (rank, world, device):
        assert (rank, world, device) == (0, 1, torch.device("cpu"))
        assert not dist.is_initialized()
    # Two processes under torchrun, the group left together: tests/test_train.py::test_two_processes_match_one.
