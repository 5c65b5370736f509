"""Run an experiment's trials with Ray Tune: grid or Optuna search, optional ASHA, one line
of progress per trial event, resume of an interrupted sweep by running it again."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.spec import Experiment
from quokka_ray.sweep.trial import SweepContext, run_trial
from quokka_ray.sweep.validation import ExperimentError, is_search_space

PLAN_FILE = "quokka_plan.json"


class ProgressLines(tune.Callback):
    """One line per trial event in the driver log."""

    def __init__(self):
        self.started = time.monotonic()

    def _say(self, trial, event: str, extra: str = "") -> None:
        elapsed = time.monotonic() - self.started
        print(f"[quokka {elapsed:7.1f}s] {trial.config.get('trial', trial.trial_id)} {event} {extra}",
              flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._say(trial, "started")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        parts = [f"{k}={result[k]:.4g}" for k in ("step", "train_loss", "val_loss") if k in result]
        self._say(trial, "reported", " ".join(parts))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._say(trial, "finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(trial, "FAILED", f"(see {trial.local_path})")


def default_concurrency(experiment: Experiment) -> int | None:
    """Trials to run at once. On CPUs, what the cluster holds now: Tune does not count Train's
    workers, and trials beyond that would start and wait. On GPUs, no cap: each waiting trial's
    placement group is demand that the autoscaler answers with GPU nodes."""
    if experiment.resources.max_concurrent_trials:
        return experiment.resources.max_concurrent_trials
    if experiment.resources.use_gpu:
        return None
    available = ray.cluster_resources()
    workers = experiment.resources.max_workers
    return max(1, int(available.get("CPU", 1) // (workers * experiment.resources.cpus_per_worker)))


def run_sweep(experiment: Experiment, trials: list[TrialSpec], context: SweepContext) -> tune.ResultGrid:
    search = experiment.search
    searched = {k: v for k, v in asdict(experiment.hyperparameters).items() if is_search_space(v)}
    param_space = {"trial": tune.grid_search([t.name for t in trials])}
    if searched:
        param_space["hp"] = searched
    search_alg = None
    if search.algorithm == "optuna":
        if not searched or len(trials) != 1:
            raise ExperimentError(
                "Search.algorithm='optuna' needs search spaces in Hyperparameters and exactly one "
                f"trial point (this plan has {len(trials)}): put one study point and objective "
                "per experiment file, or use algorithm='grid'")
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric=search.metric, mode=search.mode, seed=experiment.seed)
        param_space["trial"] = trials[0].name
    scheduler = None
    if search.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="step", grace_period=max(1, experiment.eval_every_steps))
    # The trial's own process only waits on its TorchTrainer, whose workers hold the CPUs; a
    # bundle of no CPU is refused as empty, so it asks for a token megabyte of memory.
    trainable = tune.with_resources(partial(run_trial, context=context),
                                    resources={"cpu": 0, "memory": 1e6})
    tune_root = f"{context.storage_path}/tune"
    experiment_path = f"{tune_root}/{experiment.name}"
    _check_plan(experiment_path, trials)
    if tune.Tuner.can_restore(experiment_path):
        print(f"[quokka] resuming the sweep stored at {experiment_path}", flush=True)
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, param_space=param_space,
                                   resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=search.metric, mode=search.mode, num_samples=search.num_samples,
                search_alg=search_alg, scheduler=scheduler,
                max_concurrent_trials=default_concurrency(experiment),
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(name=experiment.name, storage_path=tune_root,
                                      callbacks=[ProgressLines()], verbose=0),
        )
    _write_plan(experiment_path, trials)
    return tuner.fit()


def _trial_name(trial) -> str:
    suffix = f"-{trial.trial_id[-5:]}" if "hp" in trial.config else ""
    return f"{trial.config['trial']}{suffix}"


def _check_plan(experiment_path: str, trials: list[TrialSpec]) -> None:
    """A stored sweep may only be resumed with the same trials."""
    path = Path(experiment_path) / PLAN_FILE
    if "://" in experiment_path or not path.exists():
        return
    stored = json.loads(path.read_text())
    if stored != sorted(t.name for t in trials):
        raise ExperimentError(
            f"{experiment_path} holds a sweep with other trials than this experiment file's: "
            "give the changed experiment a new name (Experiment.name) or remove that folder")


def _write_plan(experiment_path: str, trials: list[TrialSpec]) -> None:
    if "://" in experiment_path:
        return
    Path(experiment_path).mkdir(parents=True, exist_ok=True)
    (Path(experiment_path) / PLAN_FILE).write_text(json.dumps(sorted(t.name for t in trials)))


def summarize(results: tune.ResultGrid) -> tuple[int, int]:
    """(trials that finished, trials that failed)."""
    errors = sum(1 for r in results if r.error is not None)
    return len(results) - errors, errors
