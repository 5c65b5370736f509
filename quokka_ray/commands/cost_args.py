"""The options that put a price on a plan, for `quokka plan` and `quokka run`: --gpu, --mfu and
--max-gpu-hours. They are read as text and checked here, so that a bad value is one line
naming the option and the value (argparse would print its usage too)."""

from __future__ import annotations

import argparse
import math

from quokka_ray.config import ConfigError
from quokka_ray.sweep.costs import GpuRate
from quokka_ray.train.gpus import PEAK_BF16_FLOPS

#: The MFU assumed when --gpu is given without --mfu.
DEFAULT_MFU = 0.4


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", metavar="TYPE",
                        help="count GPU-hours on this GPU type (its dense bf16 peak): "
                        + ", ".join(PEAK_BF16_FLOPS))
    parser.add_argument("--mfu", metavar="FRACTION",
                        help=f"model FLOPs utilisation assumed with --gpu, in (0, 1] "
                        f"(default {DEFAULT_MFU})")
    parser.add_argument("--max-gpu-hours", metavar="HOURS",
                        help="refuse a plan that needs more GPU-hours than this, before "
                        "anything starts (needs --gpu)")


def gpu_rate(args: argparse.Namespace) -> GpuRate | None:
    """The --gpu and --mfu of the command line, or None without --gpu."""
    if args.gpu is None:
        for option, value in (("--mfu", args.mfu), ("--max-gpu-hours", args.max_gpu_hours)):
            if value is not None:
                raise ConfigError(f"{option} {value} needs --gpu TYPE (the GPU type the hours "
                                  f"are counted on: {', '.join(PEAK_BF16_FLOPS)})")
        return None
    mfu = DEFAULT_MFU if args.mfu is None else _number("--mfu", args.mfu, "a fraction in (0, 1]")
    return GpuRate(args.gpu, mfu)


def max_gpu_hours(args: argparse.Namespace) -> float | None:
    if args.max_gpu_hours is None:
        return None
    hours = _number("--max-gpu-hours", args.max_gpu_hours, "a positive number of GPU-hours")
    if not hours > 0:
        raise ConfigError(f"--max-gpu-hours {args.max_gpu_hours}: expected a positive number "
                          "of GPU-hours")
    return hours


def _number(option: str, text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{option} {text}: expected {expected}")
    return value
