"""Tokens per second and model FLOPs utilisation (MFU)."""

from __future__ import annotations

import torch

# Dense bf16 peak FLOP/s per GPU (vendor datasheets, no sparsity).
_PEAK_BF16_FLOPS = {
    "H200": 989.4e12,
    "H100": 989.4e12,  # SXM; the PCIe card's peak is lower (756e12)
    "A100": 312e12,
    "L4": 121e12,
    "A10G": 70e12,
}


def peak_flops_per_device(device: torch.device) -> float | None:
    """The accelerator's dense bf16 peak, or None where it is unknown (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return 756e12
    for key, peak in _PEAK_BF16_FLOPS.items():
        if key in name:
            return peak
    return None


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float | None, devices: int):
    """Achieved training FLOP/s over the devices' peak; None where the peak is unknown."""
    if peak_flops is None:
        return None
    return flops_per_token * tokens_per_s / (peak_flops * devices)
