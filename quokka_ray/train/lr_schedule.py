"""Learning rate at each step: linear warmup, then cosine, warmup-stable-decay or constant."""

from __future__ import annotations

import math

from quokka_ray.train.config import Hyperparameters


def lr_at(step: int, total_steps: int, cfg: Hyperparameters) -> float:
    warmup = cfg.warmup(total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    decay_start = wsd_decay_start(total_steps, cfg)
    if step < decay_start:
        return cfg.lr
    progress = (step - decay_start) / max(1, total_steps - decay_start)
    return cfg.lr + (floor - cfg.lr) * min(1.0, progress)


def wsd_decay_start(total_steps: int, cfg: Hyperparameters) -> int:
    """The first step of a warmup-stable-decay run's decay: before it, the rate is the same
    for runs of any length (with a warmup fixed in steps), so their decays can branch there."""
    return total_steps - int(cfg.decay_fraction * total_steps)
