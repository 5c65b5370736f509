"""Typed configuration of one training run (what a Ray Train worker receives)."""

from __future__ import annotations

from dataclasses import dataclass, field

from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.model import ModelConfig

LR_SCHEDULES = ("cosine", "wsd", "constant")


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW and its learning-rate schedule."""

    lr: float = 2e-4
    """Peak learning rate (the paper's value below 8B parameters)."""
    weight_decay: float = 0.1
    """Decoupled weight decay; not applied to norms (1-D parameters)."""
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip_norm: float = 1.0
    """Global gradient-norm clip; 0 disables it."""
    lr_schedule: str = "cosine"
    """'cosine', 'wsd' (warmup-stable-decay) or 'constant' (after warmup)."""
    warmup_fraction: float = 0.05
    """Fraction of the steps spent warming up linearly from 0."""
    decay_fraction: float = 0.2
    """'wsd' only: the final fraction of the steps over which the rate decays linearly."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak ('cosine' and 'wsd')."""

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a worker needs to train and evaluate one model. Batch sizes are global:
    workers split each batch between them, so the trajectory does not depend on their number."""

    model: ModelConfig
    objective: ObjectiveConfig
    data: DataConfig
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    total_steps: int = 100
    global_batch_sequences: int = 16
    """Sequences per optimizer step, over all workers (batch tokens = this x seq_len)."""
    micro_batch_sequences: int = 16
    """Most sequences one worker runs through the model at once; gradients accumulate."""
    unique_sequences: int | None = None
    """Train on only the first this-many sequences, repeated (data-constrained studies)."""
    seed: int = 0
    eval_every_steps: int = 0
    """Validate (and report to Tune) every this-many steps; 0 means only at the end."""
    checkpoint_every_steps: int = 50
    validation_samples_per_sequence: int = 4
    """Monte-Carlo timesteps per validation sequence for the DLM negative ELBO."""
    smoothing_window_steps: int = 301
    """Gaussian window over the training-loss series for the smoothed final loss."""
    log_every_steps: int = 1
    cpu_threads_per_worker: int = 1

    @property
    def batch_tokens(self) -> int:
        return self.global_batch_sequences * self.data.seq_len

    @property
    def tokens(self) -> int:
        return self.total_steps * self.batch_tokens
