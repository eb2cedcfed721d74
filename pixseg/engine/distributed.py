"""Running on several processes with torch.distributed, as torchrun launches them.

torchrun starts one process per device and gives each RANK, LOCAL_RANK and WORLD_SIZE in its
environment; `process_group` joins them (nccl on CUDA, gloo on CPU). Every helper here falls back to
the single-process answer when no group is joined, so the same training and evaluation code runs
both ways. The only state is the process group torch.distributed itself holds.
"""

from __future__ import annotations

import contextlib
import gc
import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes files, logs and progress (rank 0, or the only process)."""
    return rank() == 0


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join the processes torchrun started, for the duration of the block; without torchrun,
    nothing. Each process takes the CUDA device of its LOCAL_RANK."""
    if not launched():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        # A DistributedDataParallel wrapper sits in reference cycles, so it can outlive the block
        # and be freed at interpreter exit, after the group: its reducer then tears down with the
        # group's threads gone and the process aborts ("terminate called without an active
        # exception") after finishing its work. Freed here, it goes while the group still exists.
        gc.collect()
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """This process's own device: on CUDA under torchrun, the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap_model(model: torch.nn.Module, device: torch.device, sync_batchnorm: bool) -> torch.nn.Module:
    """`model` in DistributedDataParallel when several processes train it, its batch norm layers
    synchronised across them with `sync_batchnorm`; the model itself otherwise."""
    if not active():
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError("sync_batchnorm = true needs CUDA devices (torch's SyncBatchNorm has no CPU "
                             "kernel); set it false to train on CPU processes")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (batch norm statistics). DistributedDataParallel sends them
    at the start of each training forward, and each process's own batch then moves its copy: before
    an evaluation, every process must score the same network, the one rank 0 saves."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def no_sync(model: torch.nn.Module, skip: bool):
    """A block whose backward keeps its gradients local (accumulated, not yet averaged across
    processes) when `skip`; the averaging then happens once, in the last accumulation step."""
    if skip and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def shard(num_items: int) -> range:
    """This process's share of items 0..num_items-1, every item in exactly one share. Unlike
    DistributedSampler, nothing is repeated to even out the shares: a repeated image would be
    counted twice in a score."""
    return range(rank(), num_items, world_size())


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over every process, in place (exact for integer counts); returned."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def mean_across(value: torch.Tensor) -> float:
    """The mean of a scalar over every process, so that every process decides alike on it."""
    value = value.detach().float().reshape(1).clone()
    return sum_across(value).item() / world_size()


def gather(obj) -> list:
    """Every process's `obj` (picklable), in rank order."""
    if not active():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def on_main(function):
    """Call `function` on rank 0 alone and return its result on every process: file checks and
    reads happen once, and a ValueError it raises is raised on every process with the same message,
    so that no process goes on to wait for the others."""
    if not active():
        return function()
    message, result = None, None
    if is_main():
        try:
            result = function()
        except ValueError as error:
            message = str(error)
    shared = [message, result]
    dist.broadcast_object_list(shared, src=0)
    if shared[0] is not None:
        raise ValueError(shared[0])
    return shared[1]
