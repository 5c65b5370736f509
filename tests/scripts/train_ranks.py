"""Run the training loop on however many processes torchrun starts (FSDP2; gloo on CPUs, or
NCCL on GPUs with --nccl) and write rank 0's reports as JSON (the shards in CACHE prepared
beforehand: `prepare_shards(tiny_config(CACHE).data)`):

    torchrun --nproc-per-node=2 train_ranks.py OUT CACHE [--steps N] [--nccl]
        [--checkpoint-every K --keep-checkpoint DIR] [--resume DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from quokka_ray.data import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.model import size_model
from quokka_ray.train import EvaluationConfig, Hyperparameters, TrainConfig
from quokka_ray.train.loop import train


def tiny_config(cache: str, steps: int = 12, kind: str = "dlm", target_params: int = 30_000,
                seq_len: int = 32) -> TrainConfig:
    data = DataConfig(seq_len=seq_len, max_corpus_bytes=100_000, validation_sequences=8,
                      shard_tokens=20_000, cache_dir=cache)
    return TrainConfig(
        model=size_model(target_params, 257, seq_len, causal=kind == "ar"),
        objective=ObjectiveConfig(kind=kind), data=data,
        hyperparameters=Hyperparameters(lr=3e-3, warmup_fraction=0.1, batch_sequences=8),
        evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
        total_steps=steps, seed=0, micro_batch_sequences=2, checkpoint_every_steps=1000,
        cpu_threads_per_worker=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("cache")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--nccl", action="store_true")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--keep-checkpoint", help="copy the first checkpoint here")
    parser.add_argument("--resume", help="resume from this checkpoint folder")
    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cpu")
    if args.nccl:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    elif world > 1:
        dist.init_process_group("gloo")
    cfg = replace(tiny_config(args.cache, steps=args.steps),
                  checkpoint_every_steps=args.checkpoint_every)
    reports = []

    def report(metrics, folder):
        reports.append(metrics)
        if folder is not None and args.keep_checkpoint and not Path(args.keep_checkpoint).exists():
            dist.barrier() if dist.is_initialized() else None
            if rank == 0:
                shutil.copytree(folder, args.keep_checkpoint)

    train(cfg, rank=rank, world_size=world, device=device, report=report,
          resume_from=Path(args.resume) if args.resume else None)
    if rank == 0:
        Path(args.out).write_text(json.dumps(reports))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
