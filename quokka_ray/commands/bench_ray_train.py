"""`quokka bench ray-train`: what Ray Train costs a run on this machine. The same trial's
steady-state step time in the plain loop (one process, no Ray) and under Ray Train (one
worker), and the time from `TorchTrainer.fit()` to the start of the first training step."""

from __future__ import annotations

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


def _steady_step_seconds(rows: list[dict], batch_tokens: int) -> float:
    steps = [r for r in rows if "tokens_per_s" in r and "final_loss" not in r]
    return statistics.median(batch_tokens / r["tokens_per_s"] for r in steps[WARMUP_STEPS:])


def run_ray_train_benchmark(cfg: TrainConfig, storage_path: str) -> dict[str, float]:
    cfg = replace(cfg, checkpoint_every_steps=cfg.total_steps)
    prepare_shards(cfg.data)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "plain.jsonl"
        train(cfg, rank=0, world_size=1, device=torch.device("cpu"),
              report=lambda metrics, checkpoint: None, tracker=JsonLinesTracker(str(log)))
        import json

        plain_rows = [json.loads(line) for line in log.read_text().splitlines()]
    started = time.time()
    ray_rows = run_single(cfg, workers=1, use_gpu=False, cpus_per_worker=1,
                          storage_path=storage_path, name="bench")
    first = next(r for r in ray_rows if r["step"] == 1 and "tokens_per_s" in r)
    startup = first["time"] - cfg.batch_tokens / first["tokens_per_s"] - started
    plain = _steady_step_seconds(plain_rows, cfg.batch_tokens)
    under_ray = _steady_step_seconds(ray_rows, cfg.batch_tokens)
    result = {"plain_step_s": plain, "ray_train_step_s": under_ray,
              "ratio": plain / under_ray, "startup_s": startup}
    print(f"steady-state step: plain loop {plain * 1e3:.2f} ms, under Ray Train "
          f"{under_ray * 1e3:.2f} ms (plain / Ray Train = {plain / under_ray:.3f}); "
          f"from fit() to the start of the first training step: {startup:.1f} s")
    return result
