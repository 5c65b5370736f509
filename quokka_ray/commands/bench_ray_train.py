"""`quokka bench ray-train`: what Ray Train costs a run on this machine. The same trial's
steady-state step time in the plain loop (one process, no Ray) and under Ray Train (one
worker), and the time to the start of the first training step, with Ray already running: from
`TorchTrainer.fit()`, for the first run after Ray starts and for the runs after it, and from
the start of a Ray Tune trial that runs it (as the trials of a sweep do)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from quokka_ray.data import prepare_shards
from quokka_ray.sweep.single_run import run_single
from quokka_ray.train.config import TrainConfig
from quokka_ray.train.loop import train
from quokka_ray.train.tracker import JsonLinesTracker

WARMUP_STEPS = 3
STARTUP_STEPS = 3
"""Steps of each run timed for its start-up alone."""


def _steady_step_seconds(rows: list[dict], batch_tokens: int) -> float:
    steps = [r for r in rows if "tokens_per_s" in r and "final_loss" not in r]
    return statistics.median(batch_tokens / r["tokens_per_s"] for r in steps[WARMUP_STEPS:])


def _plain_run(cfg: TrainConfig) -> list[dict]:
    """The logged rows of `cfg` trained in this process, without Ray."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "plain.jsonl"
        train(cfg, rank=0, world_size=1, device=torch.device("cpu"),
              report=lambda metrics, checkpoint: None, tracker=JsonLinesTracker(str(log)))
        return [json.loads(line) for line in log.read_text().splitlines()]


def _ray_train_run(cfg: TrainConfig, storage_path: str) -> tuple[list[dict], float]:
    """The logged rows of one Ray Train run of `cfg`, and the seconds from fit() to the start
    of its first training step."""
    started = time.time()
    rows = run_single(cfg, workers=1, use_gpu=False, cpus_per_worker=1,
                      storage_path=storage_path, name="bench")
    return rows, _first_step_start(rows, cfg) - started


def _first_step_start(rows: list[dict], cfg: TrainConfig) -> float:
    """When the first training step started: its row is logged at its end (every step is read
    back at once on a CPU, log_every_steps=1)."""
    first = next(r for r in rows if r["step"] == 1 and "tokens_per_s" in r)
    return first["time"] - cfg.batch_tokens / first["tokens_per_s"]


def _tune_trial_startups(cfg: TrainConfig, storage_path: str, runs: int) -> list[float]:
    """Seconds from each Tune trial's start (its actor scheduled, as `on_trial_start` sees it
    in the driver) to the first training step of the Ray Train run inside it; the trials run
    one after another, with the resources a sweep's trials ask for."""
    from ray import tune

    starts: dict[str, float] = {}

    class TrialStarts(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            starts[trial.trial_id] = time.time()

    def trial(config: dict) -> None:
        rows = run_single(cfg, workers=1, use_gpu=False, cpus_per_worker=1,
                          storage_path=storage_path, name=f"bench-trial-{config['run']}")
        tune.report({"first_step_start": _first_step_start(rows, cfg)})

    tuner = tune.Tuner(
        tune.with_resources(trial, resources={"cpu": 0, "memory": 1e6}),
        param_space={"run": tune.grid_search(list(range(runs)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(name="bench-trials", storage_path=storage_path,
                                  callbacks=[TrialStarts()], verbose=0))
    results = tuner.fit()
    return [result.metrics["first_step_start"] - starts[result.metrics["trial_id"]]
            for result in results]


def run_ray_train_benchmark(cfg: TrainConfig, storage_path: str,
                            startup_runs: int = 3) -> dict[str, float]:
    from quokka_ray.sweep.driver import start_local_ray

    cfg = replace(cfg, checkpoint_every_steps=cfg.total_steps, log_every_steps=1)
    prepare_shards(cfg.data)
    # Plain, Ray Train, plain, Ray Train: the machine's speed drifts by more than 5% over a
    # minute on small machines, and alternating puts the same drift into both means.
    plain_steps = [_steady_step_seconds(_plain_run(cfg), cfg.batch_tokens)]
    start_local_ray()
    ray_rows, first_startup = _ray_train_run(cfg, storage_path)
    ray_steps = [_steady_step_seconds(ray_rows, cfg.batch_tokens)]
    plain_steps.append(_steady_step_seconds(_plain_run(cfg), cfg.batch_tokens))
    ray_steps.append(_steady_step_seconds(_ray_train_run(cfg, storage_path)[0],
                                          cfg.batch_tokens))
    short = replace(cfg, total_steps=STARTUP_STEPS, checkpoint_every_steps=STARTUP_STEPS)
    later = [_ray_train_run(short, storage_path)[1] for _ in range(startup_runs)]
    trials = _tune_trial_startups(short, storage_path, startup_runs)
    plain, under_ray = statistics.mean(plain_steps), statistics.mean(ray_steps)
    result = {"plain_step_s": plain, "ray_train_step_s": under_ray,
              "ratio": plain / under_ray, "first_startup_s": first_startup,
              "later_startup_s": statistics.median(later),
              "tune_trial_startup_s": statistics.median(trials)}
    print(f"steady-state step, mean of two runs each, alternated: plain loop {plain * 1e3:.2f} "
          f"ms ({', '.join(f'{s * 1e3:.2f}' for s in plain_steps)}), under Ray Train "
          f"{under_ray * 1e3:.2f} ms ({', '.join(f'{s * 1e3:.2f}' for s in ray_steps)}); "
          f"plain / Ray Train = {plain / under_ray:.3f}\n"
          f"from fit() to the start of the first training step, Ray already running: "
          f"{first_startup:.1f} s for the first run after Ray started, "
          f"{result['later_startup_s']:.1f} s (median of {startup_runs}) for the runs after it "
          f"({', '.join(f'{s:.1f}' for s in later)} s)\n"
          f"from a Tune trial's start to its first training step: "
          f"{result['tune_trial_startup_s']:.1f} s (median of {startup_runs}: "
          f"{', '.join(f'{s:.1f}' for s in trials)} s)")
    return result
