"""FSDP2: shard each transformer block, then the root, over a 1-D mesh of all workers; on GPUs
compute in bf16 with fp32 gradient reduction, and optionally compile and checkpoint each block.
A single worker trains the model as it is: it has nothing to shard and no one to reduce with,
and FSDP2's hooks and one-process collectives would cost a small model's step about as much
CPU time as its own forward and backward passes (docs/benchmarks.md)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from quokka_ray.train.config import PerformanceConfig


def shard_model(model: torch.nn.Module, device: torch.device,
                performance: PerformanceConfig | None = None, *,
                shard: bool = True) -> torch.nn.Module:
    """Wrap `model` with `fully_shard` when `shard` and a process group exists (the training
    loop shards over more than one worker only); run as is otherwise."""
    performance = performance or PerformanceConfig()
    if performance.activation_checkpointing:
        # Recompute each block's activations in the backward pass: memory for ~1/3 more FLOPs.
        for i, block in enumerate(model.blocks):
            model.blocks[i] = checkpoint_wrapper(block)
    if performance.compiles(device):
        for block in model.blocks:
            block.compile()  # per block: one graph reused n_layers times, FSDP hooks outside
    if not (shard and dist.is_available() and dist.is_initialized()):
        return model
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    # bf16 compute and all-gathers, fp32 gradient reduction and master weights (GPUs only:
    # CPUs run fp32, where bf16 matmuls are slow and the tests compare trajectories exactly).
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if device.type == "cuda" else MixedPrecisionPolicy())
    for block in model.blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over workers (in place); a no-op for a single worker."""
    if _several_workers():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_max(values: torch.Tensor) -> torch.Tensor:
    """Maximum over workers (in place); a no-op for a single worker."""
    if _several_workers():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def _several_workers() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
