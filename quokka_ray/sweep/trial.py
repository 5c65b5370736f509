"""One Tune trial: resolve its settings, open its MLflow run and fit a Ray Train TorchTrainer
whose workers train with FSDP2. The Train run's name is the trial's stable name, so a trial
started again resumes from its last checkpoint, and a trial whose MLflow run has ended is not
trained again.

How a trial ended (finished, stopped early, failed) is recorded by the sweep's driver, which
sees what Tune decided; the trial's own process may be stopped at any report."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs
from ray import tune
from ray.train import (
    CheckpointConfig,
    FailureConfig,
    LoggingConfig,
    RunConfig,
    ScalingConfig,
)
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from quokka_ray import __version__
from quokka_ray.sweep.checks import Corpus, unique_tokens
from quokka_ray.sweep.grid import TrialSpec, train_config
from quokka_ray.sweep.identity import canonical, digest
from quokka_ray.sweep.spec import Experiment
from quokka_ray.tracking import MlflowRunTracker, MlflowStore
from quokka_ray.train.config import TrainConfig
from quokka_ray.train.process_group import ProcessGroupConfig
from quokka_ray.train.ray_worker import train_loop_per_worker
from quokka_ray.train.tracker import TrackerFactory


@dataclass(frozen=True)
class SweepContext:
    """What every trial needs to know about its sweep (pickled into the trial's process)."""

    experiment: Experiment
    trials: dict[str, TrialSpec]
    tracking_uri: str
    storage_path: str
    parent_run_id: str
    git_commit: str
    corpus: Corpus


#: Set in a result that a trial rebuilt from its MLflow run instead of training.
RECORDED = "quokka_recorded"

#: How long a Train worker group may take to start. Ray's default (60 s) is shorter than a
#: cold start of several workers on a busy 2-core machine or an autoscaler adding a GPU node,
#: and a timed-out start is retried in a way that can leave its placement group holding CPUs.
WORKER_START_TIMEOUT_S = 600


def allow_slow_worker_start() -> None:
    """Read by TorchTrainer.fit() in this process and passed on to its controller."""
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(WORKER_START_TIMEOUT_S))


#: Ray Train's record of a run's checkpoints, in the run's folder (a ray.train.v2 internal:
#: under another name, set_aside_if_unreadable finds nothing to check).
TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"


def set_aside_if_unreadable(folder: str) -> bool:
    """Move a Ray Train run's folder aside, and say so, if its checkpoint record cannot be
    read. Train rewrites that record in place at each checkpoint: a controller killed while
    writing it (with the driver that started it) leaves it empty, and Train refuses to start
    that run again, so the trial would fail on every resume. Started afresh, the run trains
    the same seeded trajectory, and its MLflow run keeps the values it already holds."""
    fs, path = pafs.FileSystem.from_uri(folder if "://" in folder else f"file://{folder}")
    record = f"{path}/{TRAIN_SNAPSHOT}"
    if fs.get_file_info(record).type != pafs.FileType.File:
        return False
    with fs.open_input_stream(record) as stream:
        try:
            json.loads(stream.read())
            return False
        except ValueError:
            pass
    aside = f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
    while fs.get_file_info(aside).type != pafs.FileType.NotFound:
        aside += "-"
    fs.move(path, aside)
    print(f"[quokka] {folder}: Ray Train's checkpoint record is unreadable (its writer was "
          f"killed): the run starts again from step 0; its checkpoints were moved to {aside}",
          flush=True)
    return True


def run_name(spec: TrialSpec, sampled: dict) -> str:
    """The trial's name, plus a digest of the values Tune sampled for it, if any."""
    if not spec.searched:
        return spec.name
    values = canonical({k: sampled[k] for k in spec.searched})
    return f"{spec.name}-{digest(values)[:8]}"


def resolve(config: dict, context: SweepContext) -> tuple[TrialSpec, TrainConfig, str]:
    """(spec, the TrainConfig its workers train, its run name) of a Tune trial's config."""
    spec = context.trials[config["trial"]]
    sampled = config.get("hp", {})
    return spec, train_config(spec, context.experiment, sampled), run_name(spec, sampled)


def trial_params(spec: TrialSpec, train: TrainConfig, context: SweepContext) -> dict[str, object]:
    """The MLflow parameters of a trial run; every run carries the same names."""
    hyper, objective = train.hyperparameters, spec.objective
    unique = unique_tokens(context.experiment, context.corpus, spec)
    return {
        "trial_name": spec.name, "kind": spec.kind, "kernel": objective.kernel,
        "schedule": objective.schedule, "loss": objective.loss,
        "timesteps": objective.timesteps, "t_min": objective.t_min,
        "curriculum_width": objective.curriculum_width,
        "non_embedding_params": spec.non_embedding_params, "total_params": spec.total_params,
        "tokens": train.tokens, "flops": 6.0 * spec.non_embedding_params * train.tokens,
        "budget_flops": spec.budget_flops if spec.budget_flops is not None else "",
        "unique_tokens": unique, "epochs": train.tokens / unique,
        "exact_flops_per_token": spec.exact_flops_per_token,
        # What budget_flops counts: '6N' (D = C / 6N) or 'exact' (D = C / exact_flops_per_token).
        "budget_flops_rule": getattr(context.experiment.study, "budget_flops_rule", ""),
        "seq_len": train.data.seq_len, "batch_sequences": hyper.batch_sequences,
        "batch_tokens": train.batch_tokens, "steps": train.total_steps,
        "lr": hyper.lr, "weight_decay": hyper.weight_decay, "lr_schedule": hyper.lr_schedule,
        "warmup_fraction": hyper.warmup_fraction, "decay_fraction": hyper.decay_fraction,
        "warmup_steps": "" if hyper.warmup_steps is None else hyper.warmup_steps,
        "min_lr_ratio": hyper.min_lr_ratio,
        "n_layers": spec.model.n_layers, "d_model": spec.model.d_model,
        "n_heads": spec.model.n_heads, "ffn_hidden": spec.model.ffn_hidden,
        "seed": train.seed, "data_source": train.data.source, "tokenizer": train.data.tokenizer,
        "max_corpus_bytes": train.data.max_corpus_bytes,
        "eval_every_steps": train.evaluation.eval_every_steps,
        "final_loss_window_steps": train.smoothing_lookback_steps,
        "quokka_version": __version__, "git_commit": context.git_commit,
    }


def quiet_exit_in_callbacks() -> None:
    """Tune ends a trial's process with SIGTERM, and Ray's handler raises SystemExit wherever
    the process is: inside a garbage-collection callback, Python cannot raise it, and prints
    "Exception ignored ... SystemExit" with a traceback into the sweep's log. The exit is
    ignored either way; only its traceback is left out here. Other ignored exceptions still
    print."""
    previous = sys.unraisablehook
    if getattr(previous, "quiet_exit", False):
        return

    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            previous(unraisable)

    hook.quiet_exit = True
    sys.unraisablehook = hook


def run_trial(config: dict, context: SweepContext) -> None:
    """Tune's function trainable."""
    quiet_exit_in_callbacks()
    spec, train, name = resolve(config, context)
    store = MlflowStore(context.tracking_uri)
    ended = store.ended_trial_run(context.experiment.name, name)
    if ended is not None:
        # The driver recorded how this trial ended, then was stopped before Tune saved its own
        # state (every few seconds), so the restored sweep runs the trial again: Tune is told
        # the recorded result instead, and nothing is trained or logged twice.
        tune.report({**store.recorded_result(ended), RECORDED: 1.0})
        return
    run_id = open_trial_run(spec, train, name, context)
    # How the run ended is recorded by the driver (tune_driver.TrialOutcomes) alone: when Tune
    # stops this trial, fit() may raise here as its controller goes, which is no failure.
    trainer(train, name, run_id, context).fit()


def open_trial_run(spec: TrialSpec, train: TrainConfig, name: str, context: SweepContext,
                   role: str = "trial", extra_params: dict | None = None) -> str:
    """The trial's MLflow run (its unfinished one on a resume), with its params and config."""
    store = MlflowStore(context.tracking_uri)
    run_id = store.trial_run(context.experiment.name, context.parent_run_id, name,
                             {**trial_params(spec, train, context), **(extra_params or {})},
                             role=role)
    store.log_dict(run_id, {"train_config": asdict(train), "settings": spec.settings},
                   "config.json")
    return run_id


def trainer(train: TrainConfig, name: str, run_id: str, context: SweepContext) -> TorchTrainer:
    """The Ray Train run of one MLflow run: named after it, so that a run started again
    resumes from its last checkpoint."""
    return torch_trainer(train_loop_per_worker, {
        "train": train, "tracker_factory": mlflow_tracker(run_id, context)}, name, context,
        CheckpointConfig(num_to_keep=2))


def mlflow_tracker(run_id: str, context: SweepContext) -> TrackerFactory:
    return TrackerFactory("quokka_ray.tracking", MlflowRunTracker.__name__,
                          (context.tracking_uri, run_id))


def train_folder(name: str, context: SweepContext) -> str:
    """Where the Ray Train run `name` keeps its checkpoints."""
    return f"{context.storage_path}/train/{name}"


def torch_trainer(loop, loop_config: dict, name: str, context: SweepContext,
                  checkpoints: CheckpointConfig) -> TorchTrainer:
    """A Ray Train run of the sweep, named `name`, whose workers run `loop(loop_config)`."""
    resources = context.experiment.resources
    allow_slow_worker_start()
    set_aside_if_unreadable(train_folder(name, context))
    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=resources.workers_per_trial,
                                     use_gpu=resources.use_gpu,
                                     resources_per_worker={"CPU": resources.cpus_per_worker}),
        torch_config=ProcessGroupConfig(),
        run_config=RunConfig(
            name=name, storage_path=f"{context.storage_path}/train",
            failure_config=FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=checkpoints,
            callbacks=[TuneReportCallback()],
            # Train's own INFO lines (one per report) would drown the sweep's progress lines.
            logging_config=LoggingConfig(log_level="WARNING")),
    )
