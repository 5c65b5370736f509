"""Typed configuration of one training run: what a Ray Train worker receives.

`Hyperparameters` and `EvaluationConfig` are also what an experiment file writes (with Ray Tune
search spaces where a hyperparameter is searched): each setting is defined once, here, with its
default and its checks, and `quokka plan` builds the very `TrainConfig` that `quokka run` trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from quokka_ray.config import (
    ConfigError,
    Searchable,
    check_types,
    is_search_space,
    require,
    space_bounds,
)
from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.model import ModelConfig

LrSchedule = Literal["cosine", "wsd", "constant"]


@dataclass(frozen=True)
class Hyperparameters:
    """AdamW, its learning-rate schedule and the global batch. In an experiment file, the fields
    marked Searchable may be Ray Tune search spaces; a worker always gets plain values."""

    lr: Annotated[float, Searchable] = 2e-4
    """Peak learning rate (the paper's value below 8B parameters; toy models want ~1e-2)."""
    weight_decay: Annotated[float, Searchable] = 0.1
    """Decoupled weight decay; not applied to norms (1-D parameters)."""
    batch_sequences: Annotated[int, Searchable] = 16
    """Global batch in sequences, over all workers (batch tokens = this x data.seq_len)."""
    lr_schedule: Annotated[LrSchedule, Searchable] = "cosine"
    """'cosine', 'wsd' (warmup-stable-decay) or 'constant' (after warmup)."""
    warmup_fraction: Annotated[float, Searchable] = 0.05
    """Fraction of the steps spent warming up linearly from 0."""
    warmup_steps: int | None = None
    """Warmup in steps, instead of warmup_fraction of each run's steps: runs of different
    lengths then share their first steps exactly, so that the decays of a warmup-stable-decay
    schedule can branch from one stable phase."""
    decay_fraction: Annotated[float, Searchable] = 0.2
    """'wsd' only: the final fraction of the steps over which the rate decays linearly."""
    min_lr_ratio: Annotated[float, Searchable] = 0.1
    """Final learning rate as a fraction of the peak ('cosine' and 'wsd')."""
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip_norm: float = 1.0
    """Global gradient-norm clip; 0 disables it."""

    def __post_init__(self) -> None:
        check_types(self)
        checks = {
            "lr": (lambda v: v > 0, "a positive learning rate"),
            "weight_decay": (lambda v: v >= 0, "a weight decay >= 0"),
            "batch_sequences": (lambda v: v >= 1, "at least 1 sequence"),
            "warmup_fraction": (lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
            "decay_fraction": (lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
            "min_lr_ratio": (lambda v: 0 <= v <= 1, "a ratio in [0, 1]"),
            "eps": (lambda v: v > 0, "a positive epsilon"),
            "grad_clip_norm": (lambda v: v >= 0, "a norm >= 0 (0 disables clipping)"),
        }
        for name, (ok, expected) in checks.items():
            value = getattr(self, name)
            for v in space_bounds(value) if is_search_space(value) else [value]:
                if v is not None:
                    require(ok(v), f"Hyperparameters.{name}", v, expected)
        require(all(0 <= b < 1 for b in self.betas), "Hyperparameters.betas", self.betas,
                "two values in [0, 1)")
        require(self.warmup_steps is None or self.warmup_steps >= 0,
                "Hyperparameters.warmup_steps", self.warmup_steps, "None or steps >= 0")

    def warmup(self, total_steps: int) -> int:
        """Warmup steps of a run of `total_steps`."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return int(self.warmup_fraction * total_steps)

    @property
    def searched(self) -> tuple[str, ...]:
        """Names of the fields that hold a search space."""
        return tuple(sorted(k for k in self.__dataclass_fields__
                            if is_search_space(getattr(self, k))))


@dataclass(frozen=True)
class EvaluationConfig:
    """What a run measures besides its training loss, and how often."""

    eval_every_steps: int = 0
    """Validate (and report to Tune, which early stopping needs) every this-many steps;
    0 means only at the end."""
    validation_samples_per_sequence: int = 4
    """Monte-Carlo timesteps per validation sequence for the DLM negative ELBO."""
    seed: int = 0
    """The validation noise seed, independent of the training seed, so every run of a study
    is evaluated on the same masks and timesteps."""
    smoothing_window_steps: int = 301
    """Gaussian window (in steps) of the smoothed final training loss `final_loss` (Quokka:
    301); only its past half exists at the last step."""
    smoothing_max_fraction: float = 0.1
    """The smoothing never reaches back more than this fraction of a run's steps, so that a
    short run's `final_loss` is not an average over its start."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self.eval_every_steps >= 0, "EvaluationConfig.eval_every_steps",
                self.eval_every_steps, "0 (only at the end) or a positive step count")
        require(self.validation_samples_per_sequence >= 1,
                "EvaluationConfig.validation_samples_per_sequence",
                self.validation_samples_per_sequence, "at least 1")
        require(self.smoothing_window_steps >= 1, "EvaluationConfig.smoothing_window_steps",
                self.smoothing_window_steps, "at least 1 step")
        require(0 <= self.smoothing_max_fraction <= 1, "EvaluationConfig.smoothing_max_fraction",
                self.smoothing_max_fraction, "a fraction in [0, 1]")

    def smoothing_lookback_steps(self, total_steps: int) -> int:
        """How many steps before the last one the smoothed final loss averages over."""
        return min(self.smoothing_window_steps // 2,
                   int(self.smoothing_max_fraction * total_steps))


AttentionKernel = Literal["auto", "cudnn", "flash", "efficient", "math", "flash_attn"]
_SDPA_BACKENDS = {"cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION",
                  "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}


@dataclass(frozen=True)
class PerformanceConfig:
    """How fast a run trains. None of it changes what a run learns beyond floating-point
    rounding, so none of it is part of a trial's name."""

    compile: bool | None = None
    """torch.compile each transformer block; None: on GPUs, off on CPUs (where compiling
    costs more than a toy run gains)."""
    activation_checkpointing: bool = False
    """Recompute each block's activations in the backward pass: less memory, ~1/3 more FLOPs."""
    attention: AttentionKernel = "auto"
    """PyTorch SDPA with its own choice of kernel ('auto'; cuDNN or FlashAttention on Hopper),
    one SDPA kernel by name, or 'flash_attn' (the flash-attn package, bf16 on CUDA only)."""

    def __post_init__(self) -> None:
        check_types(self)

    def compiles(self, device) -> bool:
        return device.type == "cuda" if self.compile is None else self.compile

    def sdpa_backend(self):
        """The SDPA backend to force (a torch.nn.attention.SDPBackend), or None."""
        if self.attention not in _SDPA_BACKENDS:
            return None
        from torch.nn.attention import SDPBackend

        return getattr(SDPBackend, _SDPA_BACKENDS[self.attention])


@dataclass(frozen=True)
class TrainConfig:
    """Everything a worker needs to train and evaluate one model. Batch sizes are global:
    workers split each batch between them, so the trajectory does not depend on their number."""

    model: ModelConfig
    objective: ObjectiveConfig
    data: DataConfig
    hyperparameters: Hyperparameters
    evaluation: EvaluationConfig
    total_steps: int
    """Optimizer steps; training tokens D = total_steps x batch tokens."""
    seed: int
    """Initial weights, data order and diffusion noise."""
    micro_batch_sequences: int
    """Most sequences one worker runs through the model at once; gradients accumulate."""
    checkpoint_every_steps: int
    cpu_threads_per_worker: int
    performance: PerformanceConfig = PerformanceConfig()
    log_every_steps: int = 10
    """Steps between reads of the step metrics back to the host, each of which waits for the
    device to finish its queued work (the only waits of a GPU step). Every step's metrics are
    logged; the parameter norm is computed at these steps and at the last."""
    checkpoint_at_steps: tuple[int, ...] = ()
    """Steps checkpointed besides every checkpoint_every_steps: where the decays of a
    warmup-stable-decay schedule branch from its stable phase."""

    def __post_init__(self) -> None:
        if self.hyperparameters.searched:
            raise ConfigError(f"TrainConfig: hyperparameters {self.hyperparameters.searched} are "
                              "search spaces; a run needs the values Tune sampled")
        require(self.total_steps >= 1, "TrainConfig.total_steps", self.total_steps,
                "at least 1 step (more tokens than one batch)")
        require(self.micro_batch_sequences >= 1, "Resources.micro_batch_sequences",
                self.micro_batch_sequences, "at least 1")
        require(self.checkpoint_every_steps >= 1, "Experiment.checkpoint_every_steps",
                self.checkpoint_every_steps, "at least 1")
        if self.data.unique_tokens is not None:
            require(self.data.unique_tokens // self.data.seq_len
                    >= self.hyperparameters.batch_sequences, "DataConfig.unique_tokens",
                    self.data.unique_tokens, "at least one global batch of tokens")

    @property
    def batch_tokens(self) -> int:
        return self.hyperparameters.batch_sequences * self.data.seq_len

    @property
    def tokens(self) -> int:
        """Training tokens D."""
        return self.total_steps * self.batch_tokens

    @property
    def smoothing_lookback_steps(self) -> int:
        return self.evaluation.smoothing_lookback_steps(self.total_steps)
