"""`quokka bench ray-train`: what Ray Train costs a run on this machine. The same trial's
steady-state step time in the plain loop (one process, no Ray) and under Ray Train (one
worker), and the time from `TorchTrainer.fit()` to the start of the first training step, with
Ray already running: for the first run after Ray starts and for the runs after it (as for the
trials of a sweep)."""

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


def _ray_train_run(cfg: TrainConfig, storage_path: str) -> tuple[list[dict], float]:
    """The logged rows of one Ray Train run of `cfg`, and the seconds from fit() to the start
    of its first training step."""
    started = time.time()
    rows = run_single(cfg, workers=1, use_gpu=False, cpus_per_worker=1,
                      storage_path=storage_path, name="bench")
    first = next(r for r in rows if r["step"] == 1 and "tokens_per_s" in r)
    return rows, first["time"] - cfg.batch_tokens / first["tokens_per_s"] - started


def run_ray_train_benchmark(cfg: TrainConfig, storage_path: str,
                            startup_runs: int = 3) -> dict[str, float]:
    from quokka_ray.sweep.driver import start_local_ray

    cfg = replace(cfg, checkpoint_every_steps=cfg.total_steps)
    prepare_shards(cfg.data)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "plain.jsonl"
        train(cfg, rank=0, world_size=1, device=torch.device("cpu"),
              report=lambda metrics, checkpoint: None, tracker=JsonLinesTracker(str(log)))
        plain_rows = [json.loads(line) for line in log.read_text().splitlines()]
    start_local_ray()
    ray_rows, first_startup = _ray_train_run(cfg, storage_path)
    short = replace(cfg, total_steps=STARTUP_STEPS, checkpoint_every_steps=STARTUP_STEPS)
    later = [_ray_train_run(short, storage_path)[1] for _ in range(startup_runs)]
    plain = _steady_step_seconds(plain_rows, cfg.batch_tokens)
    under_ray = _steady_step_seconds(ray_rows, cfg.batch_tokens)
    result = {"plain_step_s": plain, "ray_train_step_s": under_ray,
              "ratio": plain / under_ray, "first_startup_s": first_startup,
              "later_startup_s": statistics.median(later)}
    print(f"steady-state step: plain loop {plain * 1e3:.2f} ms, under Ray Train "
          f"{under_ray * 1e3:.2f} ms (plain / Ray Train = {plain / under_ray:.3f})\n"
          f"from fit() to the start of the first training step, Ray already running: "
          f"{first_startup:.1f} s for the first run after Ray started, "
          f"{result['later_startup_s']:.1f} s (median of {startup_runs}) for the runs after it "
          f"({', '.join(f'{s:.1f}' for s in later)} s)")
    return result
