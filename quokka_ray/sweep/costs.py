"""What a plan costs before it runs: each trial's exact training FLOPs, its GPU-hours at a
stated GPU type and MFU, and the refusal of a plan over a GPU-hour limit.

A trial's training FLOPs are the exact FLOPs per token of its model (attention, embeddings and
the whole output layer included: `quokka_ray.model.flops_per_token`) times its training
tokens; validation passes are not counted. GPU-hours are those FLOPs over the GPU's dense bf16
peak times the MFU, so they do not depend on how many GPUs a trial spreads over.

A trial of a warmup-stable-decay ladder (a data-constrained study, or an IsoFLOP study that
reuses stable phases) trains only its decay, from the ladder's branch point: that is its cost,
as its MLflow run records it (`tokens_trained`), and each ladder's stable phase, trained once,
is priced on its own."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quokka_ray.config import ConfigError
from quokka_ray.sweep.checks import ladders, most_tokens
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.ladder import ladder_of
from quokka_ray.sweep.spec import Experiment, IsoFlopStudy, Search
from quokka_ray.train.gpus import peak_bf16_flops


@dataclass(frozen=True)
class GpuRate:
    """The GPU type and the utilisation that training FLOPs are turned into GPU-hours at."""

    gpu: str
    """A name of `quokka_ray.train.gpus.PEAK_BF16_FLOPS` (h100, a100, ...)."""
    mfu: float
    """Model FLOPs utilisation: the share of the peak that training achieves, in (0, 1]."""

    def __post_init__(self) -> None:
        peak_bf16_flops(self.gpu)  # an unknown name fails here, listing the known ones
        if not 0 < self.mfu <= 1:
            raise ConfigError(f"--mfu {self.mfu:g}: expected a fraction in (0, 1]")

    @property
    def peak_flops(self) -> float:
        """Dense bf16 peak FLOP/s of one GPU."""
        return peak_bf16_flops(self.gpu)

    def gpu_hours(self, flops: float) -> float:
        return flops / (self.peak_flops * self.mfu) / 3600.0

    def describe(self) -> str:
        return f"{self.gpu} ({self.peak_flops / 1e12:g} TFLOP/s bf16 peak) at MFU {self.mfu:g}"


@dataclass(frozen=True)
class TrialCost:
    name: str
    flops: float
    """Exact training FLOPs of one run of the trial (of a ladder's trial: its decay)."""
    upper_bound: bool
    """The batch size is searched at random, so the tokens are known only once Tune samples
    it: `flops` is the most they can be."""


@dataclass(frozen=True)
class PlanCost:
    trials: list[TrialCost]
    stable_phases: list[TrialCost]
    """The stable phase of each ladder, trained once for all of its trials."""
    runs_of: dict[str, int]
    """How many times Tune runs each trial: Search.num_samples (Optuna's samples of the
    trial's study point, or the samples of random search spaces at each grid point), or what
    Search.gpu_budget allows at the trial's point."""
    early_stopping: bool
    """ASHA may stop runs before their end: the totals are then the most the plan can cost."""

    @property
    def runs(self) -> int:
        return sum(self.runs_of.values())

    @property
    def flops(self) -> float:
        """Exact training FLOPs of every run of the plan."""
        return (math.fsum(t.flops * self.runs_of[t.name] for t in self.trials)
                + math.fsum(s.flops for s in self.stable_phases))

    @property
    def upper_bound(self) -> bool:
        return self.early_stopping or any(t.upper_bound for t in self.trials)


def plan_cost(experiment: Experiment, trials: list[TrialSpec]) -> PlanCost:
    tokens = {spec.name: most_tokens(spec, experiment) for spec in trials if not spec.ladder}
    stable_phases = []
    for key, specs in ladders([spec for spec in trials if spec.ladder]).items():
        plan = ladder_of(experiment, specs)
        for spec, branch in zip(specs, plan.branches, strict=True):
            tokens[spec.name] = plan.decay_tokens(branch)
        stable_phases.append(TrialCost(
            f"{key}-stable", specs[-1].exact_flops_per_token * plan.stable.total_steps
            * plan.stable.batch_tokens, upper_bound=False))
    costs = [TrialCost(spec.name, spec.exact_flops_per_token * tokens[spec.name],
                       upper_bound=spec.tokens is None)
             for spec in trials]
    return PlanCost(costs, stable_phases, runs_per_trial(experiment.search, costs),
                    early_stopping=experiment.search.scheduler != "none")


@dataclass(frozen=True)
class BudgetCount:
    """How an IsoFLOP plan's budgets compare with the exact training FLOPs of its trials."""

    rule: str
    """IsoFlopStudy.budget_flops_rule: '6N' or 'exact'."""
    exact_over_six_n: tuple[float, float]
    """(least, most) exact training FLOPs per token over 6 N, across the plan's trials."""
    largest_miss: float | None
    """The largest relative distance of a trial's exact training FLOPs F(N) D (its whole run,
    a ladder's trial included) from its budget; None where no trial's D is known yet (a batch
    searched at random) or the budgets count 6 N D."""


def budget_count(experiment: Experiment, trials: list[TrialSpec]) -> BudgetCount | None:
    """None outside an IsoFLOP study."""
    study = experiment.study
    if not isinstance(study, IsoFlopStudy) or not trials:
        return None
    ratios = [spec.exact_flops_per_token / (6.0 * spec.non_embedding_params) for spec in trials]
    misses = [abs(spec.exact_flops_per_token * spec.tokens - spec.budget_flops) / spec.budget_flops
              for spec in trials if spec.tokens is not None]
    largest = max(misses) if misses and study.budget_flops_rule == "exact" else None
    return BudgetCount(study.budget_flops_rule, (min(ratios), max(ratios)), largest)


def runs_per_trial(search: Search, costs: list[TrialCost]) -> dict[str, int]:
    """How many runs Tune makes of each trial: Search.num_samples, or as many full-length
    runs as Search.gpu_budget's hours per study point pay for (at least one)."""
    budget = search.gpu_budget
    if budget is None:
        return {c.name: search.num_samples for c in costs}
    rate = GpuRate(budget.gpu, budget.mfu)
    # A float's rounding must not cost a trial that fits exactly.
    return {c.name: max(1, math.floor(budget.hours_per_point / rate.gpu_hours(c.flops) + 1e-9))
            for c in costs}


def check_gpu_hours(cost: PlanCost, rate: GpuRate, max_gpu_hours: float) -> None:
    """Raise ConfigError (one line: the total, the limit, the GPU and the MFU) if the plan
    needs more GPU-hours than `max_gpu_hours`."""
    total = rate.gpu_hours(cost.flops)
    if total > max_gpu_hours:
        needs = "may need up to" if cost.upper_bound else "needs"
        runs = f" ({cost.runs} runs)" if cost.runs > len(cost.trials) else ""
        raise ConfigError(
            f"the plan {needs} {format_gpu_hours(total)} GPU-hours{runs} on {rate.describe()}, "
            f"over --max-gpu-hours {max_gpu_hours:g}")


def format_gpu_hours(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 1000 else f"{hours:.3g}"
