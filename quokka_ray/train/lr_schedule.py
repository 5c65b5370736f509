"""Learning rate at each step: linear warmup, then cosine, warmup-stable-decay or constant."""

from __future__ import annotations

import math

from quokka_ray.train.config import Hyperparameters


def lr_at(step: int, total_steps: int, cfg: Hyperparameters) -> float:
    warmup = int(cfg.warmup_fraction * total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    decay_start = total_steps - int(cfg.decay_fraction * total_steps)
    if step < decay_start:
        return cfg.lr
    progress = (step - decay_start) / max(1, total_steps - decay_start)
    return cfg.lr + (floor - cfg.lr) * min(1.0, progress)
