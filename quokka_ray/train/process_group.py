"""The torch process group of a Ray Train run, set up by Ray's own torch functions, but from a
module that does not import torch. Train's controller unpickles the run's backend config: with
`TorchConfig` that means importing torch (about 2 CPU-seconds) in a process that never uses
it, on the path of every run's start. Here the functions the workers run import Ray's torch
module (and torch) on the workers only."""

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
    """Around the training function, Ray's torch context (the worker's GPU is the current CUDA
    device), imported on the worker."""

    def __enter__(self):
        from ray.train.torch.config import TorchConfigContextManager

        TorchConfigContextManager().__enter__()

    def __exit__(self, *exc):
        return False


class ProcessGroupBackend(Backend):
    """Ray's torch backend, step for step, each step run on the workers by Ray's own function."""

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


# Run on the workers: each imports Ray's torch functions (and torch) there, not here.

def _set_distributed_env(address: str, port: int) -> None:
    """MASTER_ADDR and MASTER_PORT, then torchrun's other variables as Ray sets them."""
    from ray.train.torch.config import _set_torch_distributed_env_vars

    os.environ.update({"MASTER_ADDR": address, "MASTER_PORT": str(port)})
    _set_torch_distributed_env_vars()


def _init_process_group(backend: str, world_rank: int, world_size: int, timeout_s: int) -> None:
    from ray.train.torch.config import _setup_torch_process_group

    _setup_torch_process_group(backend=backend, world_rank=world_rank, world_size=world_size,
                               init_method="env://", timeout_s=timeout_s)


def _shut_down(destroy: bool) -> None:
    from ray.train.torch.config import _shutdown_torch

    _shutdown_torch(destroy_process_group=destroy)
