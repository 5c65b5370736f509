"""The experiment object that an experiment file builds. Hyperparameters may hold Ray Tune
search spaces (`tune.grid_search`, `tune.choice`, `tune.loguniform`, ...).

Each class checks its own fields when it is built; `quokka_ray.sweep.checks` checks what
depends on several of them (metrics, Optuna, ASHA, budgets) when the plan is made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from quokka_ray.config import check_types, require
from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.train.config import EvaluationConfig, Hyperparameters, PerformanceConfig
from quokka_ray.train.gpus import PEAK_BF16_FLOPS


@dataclass(frozen=True)
class IsoFlopStudy:
    """Compute-optimal sizing (Quokka approach 1): for each budget C, every model size N trains
    on D = C / F(N) tokens, with N the non-embedding parameters of the sized model and F(N) the
    training FLOPs per token that `budget_flops_rule` counts (6 N by default)."""

    budgets_flops: list[float]
    """IsoFLOP budgets C in FLOPs: F(N) D, as `budget_flops_rule` counts them."""
    model_sizes: list[int]
    """Target non-embedding parameter counts; the shape rule picks the nearest model."""
    min_steps: int = 20
    """Sizes that would train fewer steps than this at a budget are left out of it."""
    budget_tolerance: float = 0.02
    """Most relative distance of F(N) D from its budget after rounding D to whole batches."""
    tokens_per_param: tuple[float, float] | None = None
    """(min, max) training tokens per non-embedding parameter, D / N: at each budget, sizes
    outside it are left out. Since D / N = C / (F(N) N), about C / (6 N^2), each budget keeps a
    window of sizes about a factor sqrt(max / min) wide that moves up with the budget (as the
    optimum does), so one list of sizes serves budgets far apart without training far-off
    sizes at every one."""
    reuse_stable_phase: bool = False
    """Train each model size's runs (one per budget) as one warmup-stable-decay ladder: one
    stable phase, and each budget's decay (a cooldown) branched from it at its token count.
    Needs lr_schedule='wsd'; `quokka plan` shows the compute saved."""
    budget_flops_rule: Literal["6N", "exact"] = "6N"
    """The training FLOPs per token F(N) that a budget counts, so D = C / F(N). '6N' (the
    default, as the papers this reproduces count them): F = 6 N, the laws' C = 6 N D. 'exact':
    F is the model's exact training FLOPs per token at the data's seq_len (attention,
    embeddings and the output layer included: `quokka_ray.model.flops_per_token`, what
    `quokka plan --gpu` prices), so a budget is the compute a trial really trains. At small
    widths the exact count is several times 6 N and falls towards it as models widen, so under
    '6N' the smaller models of one budget train more real compute than the larger ones (the
    plan's columns C=6ND and exact FLOPs show by how much): 'exact' makes the profile iso in
    real compute. Each trial records its exact FLOPs per token and this rule in MLflow."""

    def __post_init__(self) -> None:
        check_types(self)
        require(bool(self.budgets_flops), "IsoFlopStudy.budgets_flops", self.budgets_flops,
                "at least one budget")
        require(bool(self.model_sizes), "IsoFlopStudy.model_sizes", self.model_sizes,
                "at least one model size")
        for c in self.budgets_flops:
            require(c > 0, "IsoFlopStudy.budgets_flops", c, "positive FLOPs")
        for n in self.model_sizes:
            require(n > 0, "IsoFlopStudy.model_sizes", n, "positive parameter counts")
        require(self.min_steps >= 1, "IsoFlopStudy.min_steps", self.min_steps, "at least 1")
        require(0 < self.budget_tolerance < 1, "IsoFlopStudy.budget_tolerance",
                self.budget_tolerance, "a fraction in (0, 1)")
        ratio = self.tokens_per_param
        require(ratio is None or 0 < ratio[0] < ratio[1], "IsoFlopStudy.tokens_per_param",
                ratio, "None or (min, max) with 0 < min < max")


@dataclass(frozen=True)
class FixedStudy:
    """Explicit (model size, tokens) pairs, for example to compare hyperparameters or kernels."""

    model_sizes: list[int]
    """Target non-embedding parameter counts."""
    tokens: list[int]
    """Training tokens for each model size (same length as model_sizes)."""

    def __post_init__(self) -> None:
        check_types(self)
        require(bool(self.tokens) and len(self.model_sizes) == len(self.tokens),
                "FixedStudy.tokens", self.tokens,
                f"one token count per model size ({len(self.model_sizes)})")
        for n in self.model_sizes:
            require(n > 0, "FixedStudy.model_sizes", n, "positive parameter counts")
        for d in self.tokens:
            require(d > 0, "FixedStudy.tokens", d, "positive token counts")


@dataclass(frozen=True)
class DataConstrainedStudy:
    """Data-constrained scaling (Muennighoff et al.; Quokka eq. 14): for each budget U of
    unique training tokens and each model size N, runs that repeat those U tokens for each
    epoch count (D = epochs x U). The runs of one (U, N) form a warmup-stable-decay ladder:
    one stable phase, trained once, from which each run's decay branches; every run is its own
    MLflow run and one point of the law."""

    unique_tokens: list[int]
    """Unique-token budgets U (the first U tokens of the training split, repeated)."""
    model_sizes: list[int]
    """Target non-embedding parameter counts."""
    epochs: list[float]
    """Passes over the U tokens; each (U, N) trains one run per epoch count."""

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("unique_tokens", "model_sizes", "epochs"):
            values = getattr(self, name)
            require(bool(values), f"DataConstrainedStudy.{name}", values, "at least one value")
            for v in values:
                require(v > 0, f"DataConstrainedStudy.{name}", v, "positive values")
            require(len(set(values)) == len(values), f"DataConstrainedStudy.{name}", values,
                    "distinct values")


@dataclass(frozen=True)
class Resources:
    """How each trial runs on the cluster. None of these change a trial's results, so none is
    part of a trial's name."""

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
        workers = self.workers_per_trial
        low, high = workers if isinstance(workers, tuple) else (workers, workers)
        require(1 <= low <= high, "Resources.workers_per_trial", workers,
                "a worker count >= 1, or (min, max) with 1 <= min <= max")
        require(self.cpus_per_worker > 0, "Resources.cpus_per_worker", self.cpus_per_worker,
                "a positive CPU count")
        require(self.max_failures >= 0, "Resources.max_failures", self.max_failures, ">= 0")
        require(self.max_concurrent_trials is None or self.max_concurrent_trials >= 1,
                "Resources.max_concurrent_trials", self.max_concurrent_trials, "None or >= 1")
        require(self.micro_batch_sequences >= 1, "Resources.micro_batch_sequences",
                self.micro_batch_sequences, "at least 1")

    @property
    def max_workers(self) -> int:
        w = self.workers_per_trial
        return w[1] if isinstance(w, tuple) else w


@dataclass(frozen=True)
class GpuBudget:
    """A search's budget in GPU-hours: each study point's Optuna search gets as many trials as
    fit in `hours_per_point`, each trial priced at its full length (its exact training FLOPs,
    as `quokka plan` counts them, at `gpu`'s bf16 peak times `mfu`); at least one. Trials that
    ASHA stops early leave part of the budget unspent."""

    hours_per_point: float
    gpu: str = "h100"
    """A GPU type `quokka plan --gpu` knows (h100, h200, a100, ...)."""
    mfu: float = 0.4
    """The share of the GPU's peak that training achieves, in (0, 1]."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self.hours_per_point > 0, "GpuBudget.hours_per_point", self.hours_per_point,
                "GPU-hours > 0")
        require(self.gpu in PEAK_BF16_FLOPS, "GpuBudget.gpu", self.gpu,
                "one of " + ", ".join(PEAK_BF16_FLOPS))
        require(0 < self.mfu <= 1, "GpuBudget.mfu", self.mfu, "a fraction in (0, 1]")


@dataclass(frozen=True)
class Search:
    """How Tune explores the search spaces of `Hyperparameters`."""

    algorithm: Literal["grid", "optuna"] = "grid"
    """'grid' (every grid value, random spaces sampled num_samples times) or 'optuna' (TPE)."""
    num_samples: int = 1
    """Samples of the random (non-grid) search spaces per grid point (with Optuna: trials per
    study point)."""
    gpu_budget: GpuBudget | None = None
    """Optuna: trials per study point from a budget in GPU-hours instead of num_samples."""
    metric: str = "val_loss"
    """What the search and early stopping compare: a metric every report carries
    (val_loss, final_loss, train_loss; val_bpb with the byte tokenizer)."""
    mode: Literal["min", "max"] = "min"
    scheduler: Literal["none", "asha"] = "none"
    """'none' or 'asha' (early stopping at evaluation steps; needs
    EvaluationConfig.eval_every_steps; law fits then use only the trials that finished)."""
    reduction_factor: float = 4.0
    """ASHA: the share of trials kept at each rung is 1 / reduction_factor."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self.num_samples >= 1, "Search.num_samples", self.num_samples, "at least 1")
        if self.gpu_budget is not None:
            require(self.algorithm == "optuna", "Search.gpu_budget", self.gpu_budget,
                    "no budget unless Search.algorithm is 'optuna'")
            require(self.num_samples == 1, "Search.num_samples", self.num_samples,
                    "1 (the default) with Search.gpu_budget, which sets the trials per point")
        require(self.reduction_factor > 1, "Search.reduction_factor", self.reduction_factor,
                "a factor > 1")


@dataclass(frozen=True)
class Prediction:
    """What a law fitted on another experiment's runs predicts for this experiment's run:
    `quokka fit --propose` writes it into the experiment file it proposes, and `quokka fit` on
    that experiment sets it beside the actual final loss. A prediction cannot change what a run
    trains or measures, so it is no part of a trial's name (sweep/identity.py)."""

    fitted_experiment: str
    """The experiment whose runs the law was fitted on."""
    objective: str
    """Label of the objective the law was fitted for, as the report names it
    (e.g. 'dlm-masked-linear-elbo-uniform', 'ar')."""
    law: Literal["isoflop", "parametric"]
    """The law that made the prediction."""
    budget_flops: float
    """The compute budget C = 6 N D the prediction is for, FLOPs."""
    n_opt: float
    """Compute-optimal non-embedding parameters the law predicts for budget_flops."""
    d_opt: float
    """Compute-optimal training tokens, budget_flops / (6 n_opt)."""
    non_embedding_params: int
    """N of the model the sizing rule picks for n_opt: the run the loss is predicted for."""
    tokens: int
    """Training tokens D of that run."""
    final_loss: float
    """Predicted smoothed final training loss of that run, nats/token."""
    n_opt_interval: tuple[float, float] | None = None
    """Bootstrap interval of n_opt (None without bootstrap)."""
    final_loss_interval: tuple[float, float] | None = None
    """Prediction interval of the run's final loss: the law's bootstrap uncertainty and the
    run-to-run noise of the fitted runs (None without bootstrap)."""
    confidence: float = 0.95
    """Central coverage of both intervals."""

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("budget_flops", "n_opt", "d_opt", "final_loss"):
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, f"Prediction.{name}", value,
                    "a finite positive number")
        for name in ("non_embedding_params", "tokens"):
            require(getattr(self, name) >= 1, f"Prediction.{name}", getattr(self, name),
                    "a positive count")
        for name in ("n_opt_interval", "final_loss_interval"):
            span = getattr(self, name)
            require(span is None or (all(math.isfinite(v) and v > 0 for v in span)
                                     and span[0] <= span[1]),
                    f"Prediction.{name}", span, "None or (lo, hi) with 0 < lo <= hi")
        require(0 < self.confidence < 1, "Prediction.confidence", self.confidence,
                "a coverage in (0, 1)")


@dataclass(frozen=True)
class Experiment:
    """One study: one MLflow experiment and one Tune experiment, both called `name`."""

    study: IsoFlopStudy | FixedStudy | DataConstrainedStudy
    objectives: list[ObjectiveConfig] = field(default_factory=lambda: [ObjectiveConfig()])
    """One trial set per objective (DLM kernels, schedules, losses, or the AR baseline)."""
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    resources: Resources = field(default_factory=Resources)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    """torch.compile, activation checkpointing, attention kernel: speed, not results."""
    search: Search = field(default_factory=Search)
    name: str | None = None
    """Defaults to the experiment file's stem."""
    seed: int = 0
    """Initial weights, data order and diffusion noise of every trial."""
    checkpoint_every_steps: int = 50
    """Steps between checkpoints (a restarted worker resumes from the last one)."""
    storage_path: str = "quokka_runs"
    """Checkpoints and Tune state: a folder, or a pyarrow URI (s3://, gs://) on a cluster."""
    tracking_uri: str | None = None
    """MLflow tracking URI; by default MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""
    prediction: Prediction | None = None
    """What a fitted law predicts for this experiment's run (written by `quokka fit
    --propose`); `quokka fit` reports it beside the actual loss. Not part of a trial's name."""
    fit_target: Literal["final_loss", "val_loss"] = "final_loss"
    """The loss `quokka fit` fits the compute-constrained laws (IsoFLOP, parametric) to: the
    smoothed final training loss, as the paper, or the validation loss (the same held-out
    sequences and evaluation noise for every run, so two runs differ only by what they
    learnt). Not part of a trial's name."""

    def __post_init__(self) -> None:
        check_types(self)
        require(bool(self.objectives), "Experiment.objectives", self.objectives,
                "at least one objective")
        require(len(set(self.objectives)) == len(self.objectives), "Experiment.objectives",
                self.objectives, "distinct objectives (one is listed twice)")
        require(self.checkpoint_every_steps >= 1, "Experiment.checkpoint_every_steps",
                self.checkpoint_every_steps, "at least 1")
