"""Drawing the diffusion time t of each sequence: uniform, stratified ('antithetic'), curriculum.

Pure functions of their arguments: the training loop draws the whole global batch's t from a
generator keyed by (seed, step) and slices each worker's rows, so the loss trajectory does not
depend on the number of workers.
"""

from __future__ import annotations

import torch

from .config import ObjectiveConfig


def _rand(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device)


def stratified_uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    """n points (i + u0) / n for one shared u0 ~ U[0, 1): one in each of n equal strata.

    Each point is marginally U[0, 1), so estimators stay unbiased, but the set covers [0, 1)
    evenly, which removes the between-timestep part of the estimator's variance.
    """
    offset = _rand((1,), generator)
    return (torch.arange(n, device=offset.device, dtype=torch.float32) + offset) / n


def truncated_normal(
    n: int, mean: float, std: float, low: float, high: float, generator: torch.Generator
) -> torch.Tensor:
    """n draws of Normal(mean, std) truncated to [low, high], by inverting the CDF (fp64)."""
    u = _rand((n,), generator).double()
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    z = torch.special.ndtri(a.to(u.device) + (b - a).to(u.device) * u)
    return (mean + std * z).clamp(low, high).float()


def sample_timesteps(
    cfg: ObjectiveConfig, batch_size: int, generator: torch.Generator, progress: float
) -> torch.Tensor:
    """t (batch_size,) in [t_min, 1], float32, on the generator's device.

    progress in [0, 1] is the fraction of training done; only the curriculum uses it.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress!r}")
    span = 1.0 - cfg.t_min
    if cfg.timesteps == "uniform":
        return cfg.t_min + span * _rand((batch_size,), generator)
    if cfg.timesteps == "antithetic":
        strata = stratified_uniform(batch_size, generator)
        # Shuffled so that any slice of the batch (a worker's rows) covers all of [t_min, 1].
        order = torch.randperm(batch_size, generator=generator, device=generator.device)
        return cfg.t_min + span * strata[order]
    if cfg.timesteps == "curriculum":
        # Clean-to-noisy: the window's centre moves linearly from t = 0 to t = 1.
        return truncated_normal(
            batch_size, progress, cfg.curriculum_width, cfg.t_min, 1.0, generator
        )
    raise ValueError(f"unknown timesteps {cfg.timesteps!r}")  # ObjectiveConfig prevents this
