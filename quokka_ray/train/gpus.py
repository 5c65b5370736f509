"""GPU types by name and their dense bf16 peak FLOP/s: the denominator of MFU on a training
worker (`throughput.py`) and of the GPU-hours `quokka plan --gpu NAME --mfu X` estimates.

Imports nothing heavy, so a plan can use it without torch."""

from __future__ import annotations

from quokka_ray.config import ConfigError

# Dense bf16 peak FLOP/s per GPU (vendor datasheets, no sparsity), by the lowercase name the
# command line accepts.
PEAK_BF16_FLOPS: dict[str, float] = {
    "h200": 989.4e12,
    "h100": 989.4e12,  # SXM
    "h100-pcie": 756e12,
    "a100": 312e12,
    "l4": 121e12,
    "a10g": 70e12,
}


def peak_bf16_flops(gpu: str) -> float:
    """The peak of a GPU type named on the command line; ConfigError naming the valid ones."""
    if gpu not in PEAK_BF16_FLOPS:
        raise ConfigError(f"--gpu {gpu}: unknown GPU type; one of {', '.join(PEAK_BF16_FLOPS)}")
    return PEAK_BF16_FLOPS[gpu]


def gpu_of_device(device_name: str) -> str | None:
    """The GPU type of a CUDA device name (`torch.cuda.get_device_name`, for example
    'NVIDIA H100 80GB HBM3'), or None where the table does not know it."""
    if "H100" in device_name and "PCIe" in device_name:
        return "h100-pcie"  # the PCIe card's peak is lower than the SXM module's
    for gpu in ("h200", "h100", "a100", "l4", "a10g"):
        if gpu.upper() in device_name:
            return gpu
    return None
