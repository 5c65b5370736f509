"""The torch process group of a Ray Train run, set up as Ray's own `TorchConfig` does it, but
from a module that does not import torch. Train's controller unpickles the run's backend
config: with `TorchConfig` that means importing torch (about 2 CPU-seconds) in a process that
never uses it, on the path of every run's start. Here torch is imported only by the workers,
inside the functions they run."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray
from ray.train.backend import Backend, BackendConfig

logger = logging.getLogger(__name__)

#: How long the workers may take to tear their process group down (Ray's default too).
SHUTDOWN_TIMEOUT_S = 30


@dataclass
class ProcessGroupConfig(BackendConfig):
    """`TorchTrainer(torch_config=ProcessGroupConfig())`: NCCL on GPU workers, gloo on CPU ones
    (TorchTrainer fills `backend` in from its scaling config), initialised from MASTER_ADDR
    and MASTER_PORT."""

    backend: str | None = None
    timeout_s: int = 1800

    @property
    def backend_cls(self):
        return ProcessGroupBackend

    @property
    def train_func_context(self):
        return _CudaDevice

    @property
    def framework(self):
        from ray.train.v2._internal.util import TrainingFramework

        return TrainingFramework.TORCH


class _CudaDevice:
    """Around the training function, as Ray's torch context: the worker's GPU is the current
    CUDA device."""

    def __enter__(self):
        import torch

        if torch.cuda.is_available():
            from ray.train.torch import get_device

            device = get_device()
            if device.type == "cuda":
                torch.cuda.set_device(device)

    def __exit__(self, *exc):
        return False


class ProcessGroupBackend(Backend):
    share_cuda_visible_devices: bool = True

    def on_start(self, worker_group, backend_config: ProcessGroupConfig) -> None:
        from ray.train._internal.utils import get_address_and_port

        backend = backend_config.backend
        if backend is None:
            gpus = worker_group.get_resources_per_worker().get("GPU", 0)
            backend = "nccl" if gpus > 0 else "gloo"
        address, port = worker_group.execute_single(0, get_address_and_port)
        worker_group.execute(_set_distributed_env, address=address, port=port)
        size = len(worker_group)
        ray.get([worker_group.execute_single_async(
            rank, _init_process_group, backend=backend, world_rank=rank, world_size=size,
            timeout_s=backend_config.timeout_s) for rank in range(size)])

    def on_shutdown(self, worker_group, backend_config) -> None:
        futures = worker_group.execute_async(_shut_down, destroy=len(worker_group) > 1)
        try:
            ray.get(futures, timeout=SHUTDOWN_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            logger.warning("torch process group shutdown timed out after %s s",
                           SHUTDOWN_TIMEOUT_S)


def _set_distributed_env(address: str, port: int) -> None:
    """torchrun's variables, which init_process_group('env://') and FSDP read."""
    from ray.train.torch import get_device

    context = ray.train.get_context()
    os.environ.update({
        "MASTER_ADDR": address, "MASTER_PORT": str(port),
        "RANK": str(context.get_world_rank()), "WORLD_SIZE": str(context.get_world_size()),
        "LOCAL_RANK": str(context.get_local_rank()),
        "LOCAL_WORLD_SIZE": str(context.get_local_world_size()),
        "NODE_RANK": str(context.get_node_rank()),
        "ACCELERATE_TORCH_DEVICE": str(get_device()),
    })


def _init_process_group(backend: str, world_rank: int, world_size: int, timeout_s: int) -> None:
    from datetime import timedelta

    import torch.distributed as dist

    if backend == "nccl":
        # A collective that hangs raises after the timeout instead of blocking for ever.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    dist.init_process_group(backend=backend, init_method="env://", rank=world_rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout_s))


def _shut_down(destroy: bool) -> None:
    import torch
    import torch.distributed as dist

    if destroy and dist.is_initialized():
        dist.destroy_process_group()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
