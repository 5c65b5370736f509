"""Checks of an experiment that depend on several of its settings at once: what the search
and early stopping compare, what Optuna and ASHA need, and whether the corpus holds enough
tokens for a compute-constrained study. They run when the plan is made, before Ray or MLflow
start; each names the field and the value."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quokka_ray.config import ConfigError, is_grid, require, space_bounds
from quokka_ray.sweep.grid import TrialSpec, steps_range, train_config
from quokka_ray.sweep.spec import DataConstrainedStudy, Experiment

#: What every report to Tune carries (train/loop.py), so what Search.metric may name.
REPORTED_METRICS = ("val_loss", "final_loss", "train_loss")


def reported_metrics(experiment: Experiment) -> tuple[str, ...]:
    # Bits per byte need bytes per token, which only a byte-level tokenizer knows.
    return REPORTED_METRICS + (("val_bpb",) if experiment.data.tokenizer == "byte" else ())


def check_plan(experiment: Experiment, trials: list[TrialSpec]) -> None:
    search, hyper = experiment.search, experiment.hyperparameters
    metrics = reported_metrics(experiment)
    require(search.metric in metrics, "Search.metric", search.metric,
            "a metric the trainer reports: " + ", ".join(metrics))
    grid = [k for k in hyper.searched if is_grid(getattr(hyper, k))]
    random = [k for k in hyper.searched if k not in grid]
    if search.algorithm == "optuna":
        if grid:
            raise ConfigError(f"Search.algorithm: 'optuna' samples its search spaces itself; "
                              f"grid_search on {', '.join(grid)} cannot be given to it")
        if not random:
            raise ConfigError("Search.algorithm: 'optuna' needs a random search space in "
                              "Hyperparameters (tune.loguniform, tune.uniform, tune.choice)")
    if search.num_samples > 1 and not random:
        raise ConfigError(f"Search.num_samples: {search.num_samples} samples of no random search "
                          "space would train each trial that many times over")
    if search.scheduler == "asha":
        asha_steps(experiment, trials)
    if any(spec.ladder for spec in trials):
        check_ladders(experiment, trials)


def ladders(trials: list[TrialSpec]) -> dict[str, list[TrialSpec]]:
    """The trials of a data-constrained plan by ladder, shortest first."""
    grouped: dict[str, list[TrialSpec]] = {}
    for spec in trials:
        grouped.setdefault(spec.ladder, []).append(spec)
    return {key: sorted(specs, key=lambda s: s.tokens) for key, specs in grouped.items()}


def check_ladders(experiment: Experiment, trials: list[TrialSpec]) -> None:
    """A study of warmup-stable-decay ladders (a DataConstrainedStudy, or an IsoFlopStudy that
    reuses stable phases) trains fixed hyperparameters: the runs of a ladder must share their
    first steps, which a search or early stopping would break."""
    search, hyper = experiment.search, experiment.hyperparameters
    study = type(experiment.study).__name__
    if search.algorithm != "grid" or search.scheduler != "none" or hyper.searched and any(
            not is_grid(getattr(hyper, k)) for k in hyper.searched):
        raise ConfigError(
            f"Search: {study} of ladders: its runs share a stable phase, so it takes grid values "
            "of hyperparameters only (no Optuna, random spaces or ASHA)")
    require(hyper.lr_schedule == "wsd", "Hyperparameters.lr_schedule", hyper.lr_schedule,
            f"'wsd' ({study} of ladders: its runs branch their decays from one stable phase)")
    from quokka_ray.sweep.ladder import ladder

    for key, specs in ladders(trials).items():
        configs = [train_config(spec, experiment) for spec in specs]
        steps = [c.total_steps for c in configs]
        if len(set(steps)) < len(steps):
            field = ("DataConstrainedStudy.epochs" if study == "DataConstrainedStudy"
                     else "IsoFlopStudy.budgets_flops")
            raise ConfigError(f"{field}: runs of the same length in ladder {key} ({steps} "
                              "steps): choose values further apart")
        ladder(configs[-1], steps)


def asha_steps(experiment: Experiment, trials: list[TrialSpec]) -> tuple[int, int]:
    """(grace period, max_t) of ASHA in optimizer steps: trials are compared at evaluation
    steps, and none may be stopped for reaching a step it was always going to reach."""
    every = experiment.evaluation.eval_every_steps
    fewest, most = steps_range(trials, experiment)
    require(every >= 1, "EvaluationConfig.eval_every_steps", every,
            "a positive interval with Search.scheduler='asha' (it compares trials there)")
    require(every < fewest, "EvaluationConfig.eval_every_steps", every,
            f"fewer steps than the shortest trial trains ({fewest}), so that ASHA can compare "
            "trials before they end")
    return every, most


@dataclass(frozen=True)
class Corpus:
    """What the prepared shards hold, as the data accounting needs it."""

    train_tokens: int
    bytes_per_token: float
    """Text bytes read per training token (the corpus's bytes over its training tokens: the
    validation documents and each shard's unpacked tail are part of the cost)."""


def corpus_from_manifest(manifest: dict) -> Corpus:
    train = manifest["train_tokens"]
    source_bytes = float(manifest["source"].get("bytes", manifest["documents"]["tokens"]))
    return Corpus(train, source_bytes / max(1, train))


def unique_tokens(experiment: Experiment, corpus: Corpus, spec: TrialSpec | None = None) -> int:
    """U: the distinct training tokens a run (of `spec`, if given) may see, whole sequences."""
    seq_len = experiment.data.seq_len
    budget = experiment.data.unique_tokens
    if spec is not None and spec.unique_tokens is not None:
        budget = spec.unique_tokens
    available = corpus.train_tokens if budget is None else min(budget, corpus.train_tokens)
    return available // seq_len * seq_len


def check_corpus(experiment: Experiment, trials: list[TrialSpec], corpus: Corpus) -> None:
    """A compute-constrained study (IsoFLOP, fixed) assumes every token is seen once: stop
    before training if a trial would repeat data, naming the corpus size it needs."""
    data = experiment.data
    if isinstance(experiment.study, DataConstrainedStudy):
        most = max(experiment.study.unique_tokens)
        if most > corpus.train_tokens:
            raise ConfigError(
                f"DataConstrainedStudy.unique_tokens: {most:,} exceeds the "
                f"{corpus.train_tokens:,} training tokens of the corpus "
                f"(max_corpus_bytes={data.max_corpus_bytes:,})")
        return  # repeating data is the point of the study
    if data.unique_tokens is not None and data.unique_tokens > corpus.train_tokens:
        raise ConfigError(
            f"DataConfig.unique_tokens: {data.unique_tokens:,} exceeds the {corpus.train_tokens:,} "
            f"training tokens of the corpus (max_corpus_bytes={data.max_corpus_bytes:,})")
    unique = unique_tokens(experiment, corpus)
    longest = max(trials, key=lambda spec: most_tokens(spec, experiment))
    tokens = most_tokens(longest, experiment)
    if tokens <= unique:
        return
    epochs = tokens / unique
    if data.unique_tokens is not None:
        raise ConfigError(
            f"DataConfig.unique_tokens: {data.unique_tokens:,} tokens, but trial {longest.name} "
            f"trains on {tokens:,} ({epochs:.2f} epochs): a compute-constrained study sees "
            f"each token at most once; raise unique_tokens to at least {tokens:,}")
    needed = math.ceil(tokens * corpus.bytes_per_token * 1.01)
    raise ConfigError(
        f"DataConfig.max_corpus_bytes: {data.max_corpus_bytes:,} bytes give {corpus.train_tokens:,} "
        f"training tokens, but trial {longest.name} trains on {tokens:,} ({epochs:.2f} epochs) "
        f"and a compute-constrained study sees each token at most once; it needs about "
        f"{needed:,} bytes (max_corpus_bytes={needed})")


def most_tokens(spec: TrialSpec, experiment: Experiment) -> int:
    """Training tokens D of the trial; for a batch searched at random, the most it can be."""
    if spec.tokens is not None:
        return spec.tokens
    seq_len = experiment.data.seq_len
    return max(max(1, round(spec.target_tokens / (b * seq_len))) * b * seq_len
               for b in space_bounds(spec.hyperparameters.batch_sequences) if b)
