"""One Tune trial: resolve its settings, open its MLflow run and fit a Ray Train TorchTrainer
whose workers train with FSDP2. The Train run's name is the trial's stable name, so a trial
started again resumes from its last checkpoint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from functools import partial

from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from quokka_ray import __version__
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.spec import Experiment, Hyperparameters
from quokka_ray.tracking import MlflowRunTracker, MlflowStore
from quokka_ray.train.config import OptimizerConfig, TrainConfig
from quokka_ray.train.ray_worker import train_loop_per_worker


@dataclass(frozen=True)
class SweepContext:
    """What every trial needs to know about its sweep (pickled into the trial's process)."""

    experiment: Experiment
    trials: dict[str, TrialSpec]
    tracking_uri: str
    storage_path: str
    parent_run_id: str
    git_commit: str


def resolve_hyperparameters(spec: TrialSpec, sampled: dict) -> Hyperparameters:
    return replace(spec.hyperparameters, **{k: sampled[k] for k in spec.searched})


def run_name(spec: TrialSpec, hyper: Hyperparameters) -> str:
    """The trial's name, plus a digest of the values Tune sampled for it, if any."""
    if not spec.searched:
        return spec.name
    values = json.dumps({k: getattr(hyper, k) for k in spec.searched}, sort_keys=True)
    return f"{spec.name}-{hashlib.sha256(values.encode()).hexdigest()[:6]}"


def build_train_config(spec: TrialSpec, hyper: Hyperparameters, experiment: Experiment) -> TrainConfig:
    batch_tokens = hyper.batch_sequences * experiment.data.seq_len
    tokens = spec.tokens if spec.tokens is not None else spec.target_tokens
    steps = max(1, round(tokens / batch_tokens))
    return TrainConfig(
        model=spec.model, objective=spec.objective, data=experiment.data,
        optimizer=OptimizerConfig(lr=hyper.lr, weight_decay=hyper.weight_decay,
                                  lr_schedule=hyper.lr_schedule,
                                  warmup_fraction=hyper.warmup_fraction,
                                  min_lr_ratio=hyper.min_lr_ratio),
        total_steps=steps, global_batch_sequences=hyper.batch_sequences,
        micro_batch_sequences=experiment.resources.micro_batch_sequences, seed=experiment.seed,
        eval_every_steps=experiment.eval_every_steps,
        checkpoint_every_steps=experiment.checkpoint_every_steps,
        validation_samples_per_sequence=experiment.validation_samples_per_sequence,
        smoothing_window_steps=experiment.smoothing_window_steps,
        cpu_threads_per_worker=max(1, int(experiment.resources.cpus_per_worker)),
    )


def trial_params(spec: TrialSpec, train: TrainConfig, context: SweepContext) -> dict[str, object]:
    """The MLflow parameters of a trial run; every run carries the same names."""
    from quokka_ray.model import flops_per_token

    tokens = train.tokens
    return {
        "trial_name": spec.name, "kind": spec.kind, "kernel": spec.objective.kernel,
        "schedule": spec.objective.schedule, "loss": spec.objective.loss,
        "timesteps": spec.objective.timesteps, "t_min": spec.objective.t_min,
        "curriculum_width": spec.objective.curriculum_width,
        "non_embedding_params": spec.non_embedding_params, "total_params": spec.total_params,
        "tokens": tokens, "flops": 6.0 * spec.non_embedding_params * tokens,
        "budget_flops": spec.budget_flops if spec.budget_flops is not None else "",
        "exact_flops_per_token": flops_per_token(spec.model, train.data.seq_len),
        "seq_len": train.data.seq_len, "batch_sequences": train.global_batch_sequences,
        "batch_tokens": train.batch_tokens, "steps": train.total_steps,
        "lr": train.optimizer.lr, "weight_decay": train.optimizer.weight_decay,
        "lr_schedule": train.optimizer.lr_schedule,
        "warmup_fraction": train.optimizer.warmup_fraction,
        "n_layers": spec.model.n_layers, "d_model": spec.model.d_model,
        "n_heads": spec.model.n_heads, "ffn_hidden": spec.model.ffn_hidden,
        "seed": train.seed, "data_source": train.data.source, "tokenizer": train.data.tokenizer,
        "quokka_version": __version__, "git_commit": context.git_commit,
    }


def run_trial(config: dict, context: SweepContext) -> None:
    """Tune's function trainable."""
    spec = context.trials[config["trial"]]
    hyper = resolve_hyperparameters(spec, config.get("hp", {}))
    train = build_train_config(spec, hyper, context.experiment)
    name = run_name(spec, hyper)
    store = MlflowStore(context.tracking_uri)
    run_id = store.trial_run(context.experiment.name, context.parent_run_id, name,
                             trial_params(spec, train, context))
    store.client.log_dict(run_id, {"train_config": asdict(train)}, "config.json")
    resources = context.experiment.resources
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": train,
                           "tracker_factory": partial(MlflowRunTracker, context.tracking_uri, run_id)},
        scaling_config=ScalingConfig(num_workers=resources.workers_per_trial,
                                     use_gpu=resources.use_gpu,
                                     resources_per_worker={"CPU": resources.cpus_per_worker}),
        run_config=RunConfig(
            name=name, storage_path=f"{context.storage_path}/train",
            failure_config=FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
            # Train's own INFO lines (one per report) would drown the sweep's progress lines.
            logging_config=LoggingConfig(log_level="WARNING")),
    )
    try:
        trainer.fit()
    except Exception:
        store.end_run(run_id, "FAILED")
        raise
    except BaseException:  # stopped by Tune (a scheduler) or interrupted: not a failure
        store.end_run(run_id, "KILLED")
        raise
    store.end_run(run_id, "FINISHED")
