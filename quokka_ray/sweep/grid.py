"""Expand an experiment into its trials: study points x objectives x grid values, each with the
exact `TrainConfig` it trains and a name digested from its settings (never from time), so that
running the same experiment again finds the same trials."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields, replace

from quokka_ray.config import ConfigError, grid_values, space_bounds
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.model import (
    ModelConfig,
    flops_per_token,
    non_embedding_params,
    six_n_flops_per_token,
    size_model,
    total_params,
)
from quokka_ray.sweep.identity import digest, trial_settings
from quokka_ray.sweep.spec import DataConstrainedStudy, Experiment, FixedStudy, IsoFlopStudy
from quokka_ray.train.config import Hyperparameters, TrainConfig

# Vocabulary sizes (mask token included) known without loading the tokenizer, so that
# `quokka plan` works offline.
VOCAB_SIZES = {"byte": 257, "gpt2": 50_258}


@dataclass(frozen=True)
class TrialSpec:
    """One trial's settings. Random search spaces stay in `hyperparameters` and are sampled by
    Tune; `train_config` resolves them into what a worker trains."""

    name: str
    objective: ObjectiveConfig
    model: ModelConfig
    non_embedding_params: int
    total_params: int
    tokens: int | None
    """Training tokens D (None when the batch size is searched at random: known at run time)."""
    target_tokens: int
    budget_flops: float | None
    """The IsoFLOP budget C the trial trains: F(N) D within the study's budget_tolerance, F as
    IsoFlopStudy.budget_flops_rule counts it. The laws take it as the trial's C."""
    hyperparameters: Hyperparameters
    settings: dict
    """Everything that shapes the trial's result, in canonical form; the name digests it."""
    unique_tokens: int | None = None
    """Data-constrained studies: the U unique tokens the trial repeats (None: the corpus)."""
    ladder: str | None = None
    """Data-constrained studies: the ladder (one stable phase) whose decay this trial is."""

    @property
    def kind(self) -> str:
        return self.objective.kind

    @property
    def searched(self) -> tuple[str, ...]:
        return self.hyperparameters.searched

    @property
    def flops(self) -> float | None:
        """6 N D: the laws' C of a trial without a budget. A budgeted trial's laws take C =
        budget_flops, which is 6 N D only under the '6N' budget_flops_rule."""
        return None if self.tokens is None else 6.0 * self.non_embedding_params * self.tokens

    @property
    def exact_flops_per_token(self) -> float:
        """Training FLOPs per token of the model at the data's sequence length, attention and
        output layer included: what MFU and the plan's GPU-hours count (sweep/costs.py)."""
        return flops_per_token(self.model, self.model.max_seq_len)


def train_config(spec: TrialSpec, experiment: Experiment, sampled: dict | None = None) -> TrainConfig:
    """The configuration a worker trains: the spec with Tune's sampled values filled in."""
    hyper = replace(spec.hyperparameters, **{k: (sampled or {})[k] for k in spec.searched})
    batch_tokens = hyper.batch_sequences * experiment.data.seq_len
    tokens = spec.tokens if spec.tokens is not None else spec.target_tokens
    data = experiment.data if spec.unique_tokens is None else replace(
        experiment.data, unique_tokens=spec.unique_tokens)
    return TrainConfig(
        model=spec.model, objective=spec.objective, data=data, hyperparameters=hyper,
        evaluation=experiment.evaluation, total_steps=max(1, round(tokens / batch_tokens)),
        seed=experiment.seed, micro_batch_sequences=experiment.resources.micro_batch_sequences,
        checkpoint_every_steps=experiment.checkpoint_every_steps,
        cpu_threads_per_worker=max(1, int(experiment.resources.cpus_per_worker)),
        performance=experiment.performance)


def vocab_size(tokenizer: str) -> int:
    if tokenizer in VOCAB_SIZES:
        return VOCAB_SIZES[tokenizer]
    from quokka_ray.data.tokenizers import get_tokenizer

    return get_tokenizer(tokenizer).vocab_size


def plan_trials(experiment: Experiment) -> list[TrialSpec]:
    """Every trial the experiment implies; raises ConfigError if a budget has none."""
    vocab = vocab_size(experiment.data.tokenizer)
    _check_distinct_sizes(experiment, vocab)
    trials: list[TrialSpec] = []
    for objective, hyper in itertools.product(experiment.objectives,
                                              _grid_points(experiment.hyperparameters)):
        point: list[TrialSpec] = []  # the trials of this objective and grid point
        for target_n, target_tokens, budget, unique in _study_points(experiment.study):
            model = size_model(target_n, vocab, experiment.data.seq_len,
                               causal=objective.kind == "ar",
                               time_embedding=objective.needs_time_embedding)
            if experiment.performance.attention == "flash_attn":
                model = replace(model, attention_backend="flash_attn")
            n = non_embedding_params(model)
            counted = None if budget is None else budget_flops_per_token(experiment.study, model)
            wanted = target_tokens if budget is None else budget / counted
            tokens = _round_tokens(wanted, hyper, experiment.data.seq_len)
            if budget is not None and tokens is not None and not _fits_budget(
                    experiment.study, n, tokens, budget, counted, hyper, experiment.data.seq_len):
                continue
            # A batch searched at random rounds the tokens at run time; the size still has to
            # suit the budget.
            if budget is not None and tokens is None and not _in_tokens_per_param(
                    experiment.study, n, wanted):
                continue
            point.append(_trial(experiment, objective, model, n, tokens, int(wanted), budget,
                                hyper, unique))
        _check_budgets(experiment, point, objective, hyper)
        trials += point
    names = [t.name for t in trials]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"two trials share a name (same settings twice?): {sorted(duplicates)}")
    for spec in trials:
        if not spec.searched:
            train_config(spec, experiment)  # every check a worker's config makes, now
    return trials


def _check_distinct_sizes(experiment: Experiment, vocab: int) -> None:
    """Two targets that the shape rule maps to one model would train the same trial twice."""
    field = f"{type(experiment.study).__name__}.model_sizes"
    for objective in experiment.objectives:
        seen: dict[ModelConfig, int] = {}
        for target in dict.fromkeys(experiment.study.model_sizes):
            model = size_model(target, vocab, experiment.data.seq_len,
                               causal=objective.kind == "ar",
                               time_embedding=objective.needs_time_embedding)
            if model in seen and isinstance(experiment.study, IsoFlopStudy):
                raise ConfigError(
                    f"{field}: {seen[model]} and {target} give the same model ({model.n_layers} "
                    f"layers x {model.d_model}, N={non_embedding_params(model):,}); choose sizes "
                    "further apart")
            seen[model] = target


def _study_points(study: IsoFlopStudy | FixedStudy | DataConstrainedStudy):
    """(target N, target tokens or None, budget or None, unique tokens or None) per point."""
    if isinstance(study, IsoFlopStudy):
        for budget in study.budgets_flops:
            for size in study.model_sizes:
                yield size, None, float(budget), None
    elif isinstance(study, DataConstrainedStudy):
        for unique in study.unique_tokens:
            for size in study.model_sizes:
                for epochs in sorted(study.epochs):
                    yield size, round(epochs * unique), None, unique
    else:
        for size, tokens in zip(study.model_sizes, study.tokens, strict=True):
            yield size, tokens, None, None


def _grid_points(hyper: Hyperparameters) -> list[Hyperparameters]:
    """One Hyperparameters per combination of grid values; random spaces are left in place."""
    grids = {f.name: grid_values(getattr(hyper, f.name)) for f in fields(hyper)}
    grids = {k: v for k, v in grids.items() if v is not None}
    if not grids:
        return [hyper]
    keys = sorted(grids)
    return [replace(hyper, **dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(grids[k] for k in keys))]


def _round_tokens(tokens: float, hyper: Hyperparameters, seq_len: int) -> int | None:
    if "batch_sequences" in hyper.searched:
        return None
    batch_tokens = hyper.batch_sequences * seq_len
    return max(1, round(tokens / batch_tokens)) * batch_tokens


def budget_flops_per_token(study: IsoFlopStudy, model: ModelConfig) -> float:
    """F(N): the training FLOPs per token that the study's budgets count for `model`
    (IsoFlopStudy.budget_flops_rule), so that a trial of budget C trains D = C / F(N)."""
    if study.budget_flops_rule == "exact":
        return flops_per_token(model, model.max_seq_len)
    return six_n_flops_per_token(model)


def _fits_budget(study: IsoFlopStudy, n: int, tokens: int, budget: float,
                 flops_per_token_counted: float, hyper: Hyperparameters, seq_len: int) -> bool:
    steps = tokens // (hyper.batch_sequences * seq_len)
    if not _in_tokens_per_param(study, n, tokens):
        return False
    missed = abs(flops_per_token_counted * tokens - budget)
    return steps >= study.min_steps and missed <= study.budget_tolerance * budget


def _in_tokens_per_param(study: IsoFlopStudy, n: int, tokens: float) -> bool:
    if study.tokens_per_param is None:
        return True
    low, high = study.tokens_per_param
    return low * n <= tokens <= high * n


def _check_budgets(experiment: Experiment, point: list[TrialSpec], objective: ObjectiveConfig,
                   hyper: Hyperparameters) -> None:
    """Every budget keeps at least one size at each objective and grid point: `point` holds
    the trials of `objective` at the grid point `hyper`."""
    if not isinstance(experiment.study, IsoFlopStudy):
        return
    study = experiment.study
    fits, ratio = "is too small for any model in model_sizes", ""
    if study.tokens_per_param is not None:
        fits = "fits no model in model_sizes"
        ratio = (f", train on tokens per parameter outside {study.tokens_per_param[0]:g} to "
                 f"{study.tokens_per_param[1]:g},")
    counted = " (counted in exact training FLOPs)" if study.budget_flops_rule == "exact" else ""
    where = _point_label(experiment, objective, hyper)
    for budget in study.budgets_flops:
        if not any(t.budget_flops == budget for t in point):
            raise ConfigError(
                f"IsoFlopStudy.budgets_flops: budget {budget:.3g} FLOPs{counted} {fits}{where} "
                f"(each would train fewer than {study.min_steps} steps{ratio} or miss the budget "
                f"by more than {study.budget_tolerance:.0%})")


def _point_label(experiment: Experiment, objective: ObjectiveConfig,
                 hyper: Hyperparameters) -> str:
    """' for objective ... at lr=...': which objective and grid point, where there are several."""
    parts = []
    if len(experiment.objectives) > 1:
        shown = objective.kind if objective.kind == "ar" else "-".join(
            (objective.kind, objective.kernel, objective.schedule, objective.loss,
             objective.timesteps))
        parts.append(f" for objective {shown}")
    grid = [k for k in experiment.hyperparameters.searched
            if grid_values(getattr(experiment.hyperparameters, k)) is not None]
    if grid:
        parts.append(" at " + ", ".join(f"{k}={getattr(hyper, k)!r}" for k in sorted(grid)))
    return "".join(parts)


def _trial(experiment: Experiment, objective: ObjectiveConfig, model: ModelConfig, n: int,
           tokens: int | None, target_tokens: int, budget: float | None,
           hyper: Hyperparameters, unique: int | None = None) -> TrialSpec:
    study_point = ({"budget_flops": budget, "target_non_embedding_params": n} if budget is not None
                   else {"tokens": target_tokens, "target_non_embedding_params": n})
    rule = getattr(experiment.study, "budget_flops_rule", "6N")
    if budget is not None and rule != "6N":
        # Only where it is not the default, so that the trials of studies that count 6 N D
        # keep the names they had before budgets could count exact FLOPs.
        study_point = {**study_point, "budget_flops_rule": rule}
    data = experiment.data
    ladder = None
    if unique is not None:
        data = replace(data, unique_tokens=unique)
    if unique is not None or getattr(experiment.study, "reuse_stable_phase", False):
        # Its warmup is the ladder's, not its own: a trial of a ladder is another trial.
        study_point = {**study_point, "ladder": True}
        # The ladder: everything but the run's length, so its runs share one stable phase.
        shared = trial_settings(study_point={"unique_tokens": unique,
                                             "target_non_embedding_params": n},
                                objective=objective, model=model, tokens=None,
                                hyperparameters=hyper, seed=experiment.seed, data=data,
                                evaluation=experiment.evaluation)
        where = f"U{_short(unique)}" if unique is not None else "ladder"
        ladder = f"{objective.kind}-N{_short(n)}-{where}-{digest(shared)[:8]}".replace("+", "")
    settings = trial_settings(study_point=study_point, objective=objective, model=model,
                              tokens=tokens, hyperparameters=hyper, seed=experiment.seed,
                              data=data, evaluation=experiment.evaluation)
    where = f"C{budget:.0e}" if budget is not None else f"D{_short(target_tokens)}"
    if unique is not None:
        where = f"U{_short(unique)}-D{_short(target_tokens)}"
    name = f"{objective.kind}-N{_short(n)}-{where}-{digest(settings)[:8]}".replace("+", "")
    return TrialSpec(name=name, objective=objective, model=model, non_embedding_params=n,
                     total_params=total_params(model), tokens=tokens,
                     target_tokens=target_tokens, budget_flops=budget, hyperparameters=hyper,
                     settings=settings, unique_tokens=unique, ladder=ladder)


def _short(count: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(int(count))


def steps_range(trials: list[TrialSpec], experiment: Experiment) -> tuple[int, int]:
    """(fewest, most) optimizer steps over the trials; a batch searched at random counts at
    the edges of its space."""
    steps = []
    for spec in trials:
        batch = spec.hyperparameters.batch_sequences
        batches = [b for b in space_bounds(batch) if b] if "batch_sequences" in spec.searched \
            else [batch]
        tokens = spec.tokens if spec.tokens is not None else spec.target_tokens
        steps += [max(1, round(tokens / (b * experiment.data.seq_len))) for b in batches]
    return min(steps), max(steps)

