"""Warmup-stable-decay ladders: runs of one model and data that differ only in length share one
stable phase, trained once, and each branches into its own decay from the stable phase's
checkpoint at the step where that decay starts. A branch trains exactly what the same run
trained from scratch would (same seed, data order and noise, all keyed by step), so a ladder of
lengths costs about its longest stable phase plus the decays instead of the sum of full runs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from quokka_ray.config import ConfigError
from quokka_ray.sweep.grid import TrialSpec, train_config
from quokka_ray.sweep.spec import Experiment
from quokka_ray.train.config import TrainConfig
from quokka_ray.train.lr_schedule import wsd_decay_start


@dataclass(frozen=True)
class Ladder:
    stable: TrainConfig
    """The stable phase: constant rate after the shared warmup, checkpointed at every branch
    point, as long as the latest branch point."""
    branches: tuple[TrainConfig, ...]
    """One warmup-stable-decay run per length, shortest first."""

    def branch_point(self, branch: TrainConfig) -> int:
        """The step of the stable phase that `branch` starts from."""
        return wsd_decay_start(branch.total_steps, branch.hyperparameters)

    def decay_tokens(self, branch: TrainConfig) -> int:
        """Tokens `branch` trains itself: its decay, from its branch point to its end."""
        return (branch.total_steps - self.branch_point(branch)) * branch.batch_tokens

    @property
    def steps_trained(self) -> int:
        """Optimizer steps the ladder trains: the stable phase plus each decay."""
        return self.stable.total_steps + sum(
            b.total_steps - self.branch_point(b) for b in self.branches)

    @property
    def steps_from_scratch(self) -> int:
        """Optimizer steps of the same runs, each trained from scratch."""
        return sum(b.total_steps for b in self.branches)


def ladder_of(experiment: Experiment, specs: list[TrialSpec]) -> Ladder:
    """The ladder of a plan's trials that share one (`checks.ladders` groups them), shortest
    first: one branch per trial, in the same order."""
    configs = [train_config(spec, experiment) for spec in specs]
    return ladder(configs[-1], [c.total_steps for c in configs])


def ladder(base: TrainConfig, lengths: list[int]) -> Ladder:
    """The ladder of `base`'s model, data and hyperparameters at each of `lengths` (steps).
    Every branch warms up for the shortest one's warmup steps (a warmup in steps, so that all
    share their first steps); `base`'s warmup_fraction and decay_fraction set it."""
    if not lengths or min(lengths) < 1:
        raise ConfigError(f"ladder lengths: expected positive step counts, got {lengths}")
    if base.objective.timesteps == "curriculum":
        # Its timestep window moves with progress = step / total steps: runs of different
        # lengths differ from the first step, so nothing can be shared.
        raise ConfigError("ObjectiveConfig.timesteps: 'curriculum' depends on a run's length; "
                          "a ladder needs 'uniform' or 'antithetic'")
    lengths = sorted(set(lengths))
    hyper = base.hyperparameters
    warmup = hyper.warmup(lengths[0])
    branches = tuple(
        replace(base, total_steps=n,
                hyperparameters=replace(hyper, lr_schedule="wsd", warmup_steps=warmup))
        for n in lengths)
    points = [wsd_decay_start(b.total_steps, b.hyperparameters) for b in branches]
    if min(points) < warmup:
        raise ConfigError(
            f"Hyperparameters.decay_fraction: {hyper.decay_fraction} makes the shortest run "
            f"({lengths[0]} steps) decay from step {min(points)}, inside its {warmup}-step "
            "warmup; a ladder branches after the warmup")
    stable = replace(base, total_steps=max(points), checkpoint_at_steps=tuple(sorted(set(points))),
                     hyperparameters=replace(hyper, lr_schedule="constant", warmup_steps=warmup))
    return Ladder(stable=stable, branches=branches)


@dataclass
class LadderResult:
    stable_rows: list[dict]
    branch_rows: list[list[dict]]
    """The logged steps of each branch (its decay only), in the order of Ladder.branches."""


def run_ladder(plan: Ladder, *, storage_path: str, name: str, workers: int = 1,
               use_gpu: bool = False, cpus_per_worker: float = 1.0,
               max_failures: int = 2) -> LadderResult:
    """Train the ladder as a sweep does, as one Ray Train run (the stable phase, then each
    decay from its checkpoint), each run's steps logged to a file instead of MLflow."""
    import tempfile
    from functools import partial
    from pathlib import Path

    from quokka_ray.sweep.ladder_trial import ladder_checkpoints
    from quokka_ray.sweep.single_run import fit_under_ray_train, read_rows, stamped
    from quokka_ray.train.ladder_worker import (
        STABLE,
        Phase,
        decay_name,
        train_ladder_per_worker,
    )
    from quokka_ray.train.tracker import JsonLinesTracker

    run_name = stamped(name)
    with tempfile.TemporaryDirectory(prefix="quokka-ladder-") as folder:
        files = [Path(folder) / f"{i}.jsonl" for i in range(len(plan.branches) + 1)]
        phases = [Phase(STABLE, plan.stable, 0, partial(JsonLinesTracker, str(files[0])))]
        phases += [Phase(decay_name(b.total_steps), b, plan.branch_point(b),
                         partial(JsonLinesTracker, str(file)))
                   for b, file in zip(plan.branches, files[1:], strict=True)]
        fit_under_ray_train(
            train_ladder_per_worker,
            {"phases": phases, "run_folder": f"{storage_path}/{run_name}"},
            data=plan.stable.data, workers=workers, use_gpu=use_gpu,
            cpus_per_worker=cpus_per_worker, storage_path=storage_path, run_name=run_name,
            max_failures=max_failures, checkpoints=ladder_checkpoints(plan))
        rows = [read_rows(file) for file in files]
    return LadderResult(rows[0], rows[1:])
