"""The experiment object that an experiment file builds. Values marked `Searchable` may be Ray
Tune search spaces (`tune.grid_search`, `tune.choice`, `tune.loguniform`, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep.validation import ExperimentError, Searchable, check_types


@dataclass(frozen=True)
class IsoFlopStudy:
    """Compute-optimal sizing (Quokka approach 1): for each budget C, every model size N trains
    on D = C / (6 N) tokens, with N the non-embedding parameters of the sized model."""

    budgets_flops: list[float]
    """IsoFLOP budgets C in FLOPs (6 N D)."""
    model_sizes: list[int]
    """Target non-embedding parameter counts; the shape rule picks the nearest model."""
    min_steps: int = 20
    """Sizes that would train fewer steps than this at a budget are left out of it."""
    budget_tolerance: float = 0.02
    """Most relative distance of 6 N D from its budget after rounding D to whole batches."""

    def __post_init__(self) -> None:
        check_types(self)
        if not self.budgets_flops or not self.model_sizes:
            raise ExperimentError("IsoFlopStudy: budgets_flops and model_sizes must not be empty")
        if any(c <= 0 for c in self.budgets_flops):
            raise ExperimentError("IsoFlopStudy.budgets_flops: budgets must be positive")
        if any(n <= 0 for n in self.model_sizes):
            raise ExperimentError("IsoFlopStudy.model_sizes: sizes must be positive")


@dataclass(frozen=True)
class FixedStudy:
    """Explicit (model size, tokens) pairs, for example to compare hyperparameters or kernels."""

    model_sizes: list[int]
    """Target non-embedding parameter counts."""
    tokens: list[int]
    """Training tokens for each model size (same length as model_sizes)."""

    def __post_init__(self) -> None:
        check_types(self)
        if len(self.model_sizes) != len(self.tokens) or not self.tokens:
            raise ExperimentError(
                "FixedStudy: model_sizes and tokens must be non-empty and of the same length")


@dataclass(frozen=True)
class Hyperparameters:
    """Optimisation settings of every trial; each may be a Tune search space."""

    lr: Annotated[float, Searchable] = 3e-3
    """Peak learning rate (AdamW)."""
    weight_decay: Annotated[float, Searchable] = 0.1
    batch_sequences: Annotated[int, Searchable] = 16
    """Global batch in sequences (batch tokens = this x data.seq_len)."""
    lr_schedule: Annotated[str, Searchable] = "cosine"
    """'cosine', 'wsd' or 'constant'."""
    warmup_fraction: Annotated[float, Searchable] = 0.05
    min_lr_ratio: Annotated[float, Searchable] = 0.1

    def __post_init__(self) -> None:
        check_types(self)


@dataclass(frozen=True)
class Resources:
    """How each trial runs on the cluster."""

    workers_per_trial: int | tuple[int, int] = 1
    """Ray Train workers per trial; (min, max) makes the run elastic."""
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    """One GPU per worker (bf16 autocast on CUDA)."""
    max_failures: int = 2
    """Restarts of a trial's workers from their last checkpoint before the trial fails."""
    max_concurrent_trials: int | None = None
    """Trials running at once; by default as many as the cluster's CPUs (or GPUs) hold."""
    micro_batch_sequences: int = 16
    """Most sequences a worker puts through the model at once (gradients accumulate)."""

    def __post_init__(self) -> None:
        check_types(self)

    @property
    def max_workers(self) -> int:
        w = self.workers_per_trial
        return w[1] if isinstance(w, tuple) else w


@dataclass(frozen=True)
class Search:
    """How Tune explores the search spaces of `Hyperparameters`."""

    algorithm: str = "grid"
    """'grid' (every grid value, random spaces sampled num_samples times) or 'optuna' (TPE)."""
    num_samples: int = 1
    """Samples of the random (non-grid) search spaces per grid point."""
    metric: str = "val_loss"
    mode: str = "min"
    scheduler: str = "none"
    """'none' or 'asha' (early stopping; law fits then use only the trials that finished)."""

    def __post_init__(self) -> None:
        check_types(self)
        if self.algorithm not in ("grid", "optuna"):
            raise ExperimentError(f"Search.algorithm: expected 'grid' or 'optuna', got {self.algorithm!r}")
        if self.scheduler not in ("none", "asha"):
            raise ExperimentError(f"Search.scheduler: expected 'none' or 'asha', got {self.scheduler!r}")
        if self.mode not in ("min", "max"):
            raise ExperimentError(f"Search.mode: expected 'min' or 'max', got {self.mode!r}")


@dataclass(frozen=True)
class Experiment:
    """One study: one MLflow experiment and one Tune experiment, both called `name`."""

    study: IsoFlopStudy | FixedStudy
    objectives: list[ObjectiveConfig] = field(default_factory=lambda: [ObjectiveConfig()])
    """One trial set per objective (DLM kernels, schedules, losses, or the AR baseline)."""
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    data: DataConfig = field(default_factory=DataConfig)
    resources: Resources = field(default_factory=Resources)
    search: Search = field(default_factory=Search)
    name: str | None = None
    """Defaults to the experiment file's stem."""
    seed: int = 0
    eval_every_steps: int = 0
    """Validate and report to Tune every this-many steps (0: only at the end)."""
    checkpoint_every_steps: int = 50
    validation_samples_per_sequence: int = 4
    smoothing_window_steps: int = 301
    """Gaussian window (in steps) for the smoothed final training loss."""
    storage_path: str = "quokka_runs"
    """Checkpoints and Tune state: a folder, or a pyarrow URI (s3://, gs://) on a cluster."""
    tracking_uri: str | None = None
    """MLflow tracking URI; by default MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""

    def __post_init__(self) -> None:
        check_types(self)
        if not self.objectives:
            raise ExperimentError("Experiment.objectives: at least one objective is needed")
