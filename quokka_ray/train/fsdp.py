"""FSDP2: shard each transformer block, then the root, over a 1-D mesh of all workers."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard


def shard_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap `model` with `fully_shard` when a process group exists; run as is otherwise
    (Ray Train's local mode, unit tests)."""
    if not (dist.is_available() and dist.is_initialized()):
        return model
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over workers (in place); a no-op without a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
