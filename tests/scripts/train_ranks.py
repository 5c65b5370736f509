"""Run the training loop on however many processes torchrun starts (gloo, FSDP2) and write
rank 0's loss history as JSON: `torchrun --nproc-per-node=2 train_ranks.py OUT CACHE` (the
shards in CACHE prepared beforehand: `prepare_shards(tiny_config(CACHE).data)`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from quokka_ray.data import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.model import size_model
from quokka_ray.train import EvaluationConfig, Hyperparameters, TrainConfig
from quokka_ray.train.loop import train


def tiny_config(cache: str, steps: int = 12, kind: str = "dlm") -> TrainConfig:
    data = DataConfig(seq_len=32, max_corpus_bytes=100_000, validation_sequences=8,
                      shard_tokens=20_000, cache_dir=cache)
    return TrainConfig(
        model=size_model(30_000, 257, 32, causal=kind == "ar"),
        objective=ObjectiveConfig(kind=kind), data=data,
        hyperparameters=Hyperparameters(lr=3e-3, warmup_fraction=0.1, batch_sequences=8),
        evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
        total_steps=steps, seed=0, micro_batch_sequences=2, checkpoint_every_steps=1000,
        cpu_threads_per_worker=1)


def main() -> None:
    out, cache = sys.argv[1], sys.argv[2]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    reports = []
    train(tiny_config(cache), rank=rank, world_size=world, device=torch.device("cpu"),
          report=lambda metrics, folder: reports.append(metrics))
    if rank == 0:
        Path(out).write_text(json.dumps(reports))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
