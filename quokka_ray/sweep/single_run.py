"""`quokka train`: one trial of an experiment as one Ray Train run, without Tune or MLflow, on
a chosen number of workers: for debugging, and for benchmarks under Ray Train."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from quokka_ray.config import ConfigError
from quokka_ray.data import prepare_shards
from quokka_ray.sweep.grid import TrialSpec, train_config
from quokka_ray.sweep.spec import Experiment
from quokka_ray.sweep.trial import allow_slow_worker_start
from quokka_ray.train.config import TrainConfig

if TYPE_CHECKING:
    from ray.train import CheckpointConfig


def single_run_config(experiment: Experiment, trials: list[TrialSpec], trial: str | None,
                      steps: int | None) -> tuple[TrialSpec, TrainConfig]:
    """The trial to train (the first one by default) and its config, cut to `steps`."""
    specs = {t.name: t for t in trials}
    if trial is not None and trial not in specs:
        raise ConfigError(f"--trial: no trial {trial!r} in {experiment.name} (see quokka plan)")
    spec = specs[trial] if trial else trials[0]
    if spec.searched:
        raise ConfigError(f"--trial: {spec.name} searches {', '.join(spec.searched)}; "
                          "quokka train runs fixed hyperparameters")
    cfg = train_config(spec, experiment)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps: expected at least 1, got {steps}")
        cfg = replace(cfg, total_steps=steps, checkpoint_every_steps=min(
            cfg.checkpoint_every_steps, steps))
    return spec, cfg


def run_single(cfg: TrainConfig, *, workers: int | tuple[int, int], use_gpu: bool,
               cpus_per_worker: float, storage_path: str, name: str, max_failures: int = 2,
               resize_check_s: float = 60.0) -> list[dict]:
    """Train `cfg` under Ray Train on `workers` workers (an elastic run for (min, max), which
    checks for room to grow every `resize_check_s`); the metrics of every logged step, in the
    order they were logged (a step trained again after a restart appears again)."""
    from quokka_ray.train.ray_worker import train_loop_per_worker
    from quokka_ray.train.tracker import JsonLinesTracker

    with tempfile.TemporaryDirectory(prefix="quokka-train-") as folder:
        steps_file = Path(folder) / "steps.jsonl"
        fit_under_ray_train(
            train_loop_per_worker,
            {"train": cfg, "tracker_factory": partial(JsonLinesTracker, str(steps_file))},
            data=cfg.data, workers=workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
            storage_path=storage_path, run_name=stamped(name), max_failures=max_failures,
            resize_check_s=resize_check_s)
        return read_rows(steps_file)


def stamped(name: str) -> str:
    """A Ray Train run name of its own for each call: a debugging run starts afresh."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_rows(steps_file: Path) -> list[dict]:
    """The steps a JsonLinesTracker logged, in order."""
    return ([json.loads(line) for line in steps_file.read_text().splitlines()]
            if steps_file.exists() else [])


def fit_under_ray_train(loop, loop_config: dict, *, data, workers: int | tuple[int, int],
                        use_gpu: bool, cpus_per_worker: float, storage_path: str, run_name: str,
                        max_failures: int = 2, resize_check_s: float = 60.0,
                        checkpoints: CheckpointConfig | None = None):
    """One Ray Train run whose workers run `loop(loop_config)` on `data`'s prepared shards, on
    this process's Ray (a local one if none is connected); its Result."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from quokka_ray.train.process_group import ProcessGroupConfig

    prepare_shards(data)
    allow_slow_worker_start()
    if not ray.is_initialized():
        from quokka_ray.sweep.driver import start_local_ray

        start_local_ray()
    trainer = TorchTrainer(
        loop, train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker},
                                     elastic_resize_monitor_interval_s=resize_check_s),
        torch_config=ProcessGroupConfig(),
        run_config=RunConfig(name=run_name, storage_path=storage_path,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=checkpoints))
    return trainer.fit()
