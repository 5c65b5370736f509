"""Tokens per second and model FLOPs utilisation (MFU)."""

from __future__ import annotations

import torch

from quokka_ray.train.gpus import PEAK_BF16_FLOPS, gpu_of_device


def peak_flops_per_device(device: torch.device) -> float | None:
    """The accelerator's dense bf16 peak, or None where it is unknown (CPUs)."""
    if device.type != "cuda":
        return None
    gpu = gpu_of_device(torch.cuda.get_device_name(device))
    return None if gpu is None else PEAK_BF16_FLOPS[gpu]


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float | None, devices: int):
    """Achieved training FLOP/s over the devices' peak; None where the peak is unknown."""
    if peak_flops is None:
        return None
    return flops_per_token * tokens_per_s / (peak_flops * devices)
