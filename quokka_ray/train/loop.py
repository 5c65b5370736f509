"""The training loop of one run on one worker. Pure PyTorch: Ray reaches it only through the
`report` callback (metrics, optionally with a checkpoint folder) that `ray_worker` supplies.

Reproducibility: the batch at step s and its diffusion noise are drawn for the whole global
batch from (seed, s), and each worker takes its rows, so the trajectory is the same on any
number of workers and after a resume from a checkpoint."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from quokka_ray.data import BatchPrefetcher, PackedCorpus, rank_rows
from quokka_ray.diffusion import draw_noise, per_sequence_loss, validation_loss
from quokka_ray.model import Transformer, flops_per_token
from quokka_ray.train import checkpoint
from quokka_ray.train.config import TrainConfig
from quokka_ray.train.fsdp import all_reduce_sum, shard_model
from quokka_ray.train.lr_schedule import lr_at
from quokka_ray.train.smoothing import smooth_final_loss
from quokka_ray.train.throughput import mfu, peak_flops_per_device
from quokka_ray.train.tracker import NullTracker, Tracker

Report = Callable[[dict[str, float], "Path | None"], None]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Norm gains (1-D) are not decayed: decay would pull them towards zero, not towards identity.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    hyper = cfg.hyperparameters
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": hyper.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=hyper.lr, betas=hyper.betas, eps=hyper.eps,
    )


def step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step, 0x5EED]).generate_state(1)[0])


def train(
    cfg: TrainConfig,
    *,
    rank: int,
    world_size: int,
    device: torch.device,
    report: Report,
    resume_from: Path | None = None,
    tracker: Tracker | None = None,
) -> dict[str, float]:
    """Train to `cfg.total_steps`, reporting at each evaluation and checkpoint; returns the
    final metrics (also reported, with the last checkpoint)."""
    tracker = tracker or NullTracker()
    torch.set_num_threads(cfg.cpu_threads_per_worker)
    data = PackedCorpus(cfg.data)  # prepared by the driver: a worker never tokenizes
    available = data.train_sequences
    unique = cfg.data.unique_tokens // cfg.data.seq_len if cfg.data.unique_tokens else available
    if unique > available:
        raise ValueError(f"DataConfig.unique_tokens: {cfg.data.unique_tokens} tokens exceed the "
                         f"{available * cfg.data.seq_len} of the training split")
    batch_sequences = cfg.hyperparameters.batch_sequences
    if batch_sequences < world_size:
        raise ValueError(
            f"global batch of {batch_sequences} sequences cannot be split over "
            f"{world_size} workers")
    mask_id = data.manifest["mask_token_id"]

    torch.manual_seed(cfg.seed)  # identical initial weights on every worker
    model = shard_model(Transformer(cfg.model).to(device), device)
    optimizer = build_optimizer(model, cfg)
    state = checkpoint.load(resume_from, model, optimizer) if resume_from else checkpoint.TrainState()

    validation = torch.from_numpy(data.validation).to(device)
    flops_tok = flops_per_token(cfg.model, cfg.data.seq_len)
    peak = peak_flops_per_device(device)
    start, stop = rank_rows(batch_sequences, world_size, rank)
    micro_steps = math.ceil(math.ceil(batch_sequences / world_size) / cfg.micro_batch_sequences)
    # bf16 autocast on GPUs (weights and optimizer state stay fp32); fp32 on CPUs.
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())
    bytes_per_token = data.manifest["bytes_per_token"]  # known for byte-level tokens only

    def evaluate() -> dict[str, float]:
        """Validation (every worker, same data) and the smoothed training loss so far."""
        history = np.asarray(state.loss_history)
        metrics = {"step": float(state.step), "train_loss": float(history[-1]),
                   "final_loss": smooth_final_loss(history, cfg.smoothing_lookback_steps),
                   "val_loss": _validate(model, validation, cfg, mask_id, autocast)}
        if bytes_per_token:
            metrics["val_bpb"] = metrics["val_loss"] / math.log(2) / bytes_per_token
        tracker.log_metrics({k: v for k, v in metrics.items() if k != "step"}, step=state.step)
        tracker.flush()
        return metrics

    # This worker's rows of each global batch, read ahead; the order is f(seed, epoch) alone.
    batches = BatchPrefetcher(data.train, seed=cfg.seed, global_batch_sequences=batch_sequences,
                              unique_sequences=unique, rows=(start, stop), first_step=state.step)
    tokens_per_s = 0.0
    metrics: dict[str, float] | None = None
    try:
        while state.step < cfg.total_steps:
            t0 = time.perf_counter()
            step = state.step
            lr = lr_at(step, cfg.total_steps, cfg.hyperparameters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = torch.Generator().manual_seed(step_seed(cfg.seed, step))
            noise = draw_noise(cfg.objective, batch_sequences, cfg.data.seq_len,
                               cfg.model.vocab_size, generator,
                               progress=step / max(1, cfg.total_steps - 1)).rows(start, stop)
            tokens = torch.from_numpy(batches.get(step)).to(device)

            model.train()
            sums: dict[str, torch.Tensor] = {}
            for rows in np.array_split(np.arange(stop - start), micro_steps):
                lo, hi = int(rows[0]), int(rows[-1]) + 1
                with autocast:
                    out = per_sequence_loss(model, tokens[lo:hi], noise.rows(lo, hi).to(device),
                                            cfg.objective, mask_id)
                # Sum over this worker's rows / global batch; FSDP averages gradients over the
                # workers, so scaling by world_size makes the result the global-batch mean.
                loss = out.per_sequence.sum() * (world_size / batch_sequences)
                loss.backward()
                for name, values in {"loss": out.per_sequence, **out.metrics}.items():
                    sums[name] = sums.get(name, 0.0) + values.detach().float().sum()
            clip = cfg.hyperparameters.grad_clip_norm
            grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                         if clip > 0 else torch.tensor(0.0))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            names = sorted(sums)
            totals = all_reduce_sum(torch.stack([sums[n] for n in names]).cpu())
            step_metrics = {f"train_{n}" if n != "loss" else "train_loss":
                            float(v) / batch_sequences for n, v in zip(names, totals, strict=True)}
            state.loss_history.append(step_metrics["train_loss"])
            state.step += 1
            tokens_per_s = cfg.batch_tokens / (time.perf_counter() - t0)
            if state.step % cfg.log_every_steps == 0 or state.step == cfg.total_steps:
                step_metrics.update(learning_rate=lr, grad_norm=float(_full_tensor(grad_norm)),
                                    tokens_per_s=tokens_per_s, tokens=state.step * cfg.batch_tokens)
                utilisation = mfu(flops_tok, tokens_per_s, peak, world_size)
                if utilisation is not None:
                    step_metrics["mfu"] = utilisation
                tracker.log_metrics(step_metrics, step=state.step)

            final = state.step == cfg.total_steps
            save = final or state.step % cfg.checkpoint_every_steps == 0
            # Every report carries val_loss, so that Tune's schedulers can compare any two.
            every = cfg.evaluation.eval_every_steps
            if not (save or (every and state.step % every == 0)):
                continue
            metrics = evaluate()
            metrics["tokens_per_s"] = tokens_per_s
            if save:
                with tempfile.TemporaryDirectory(prefix="quokka-ckpt-") as folder:
                    checkpoint.save(Path(folder), model, optimizer, state, rank)
                    report(metrics, Path(folder))
            else:
                report(metrics, None)
    finally:
        batches.close()
    if metrics is None:  # resumed from the final checkpoint: nothing left to train
        metrics = evaluate()
        report(metrics, None)
    tracker.flush()
    return metrics


def _validate(model, validation: torch.Tensor, cfg: TrainConfig, mask_id: int, autocast) -> float:
    with autocast:
        return validation_loss(
            model, validation, cfg.objective, mask_id, seed=cfg.seed,
            samples_per_sequence=cfg.evaluation.validation_samples_per_sequence)


def _full_tensor(value: torch.Tensor) -> torch.Tensor:
    return value.full_tensor() if hasattr(value, "full_tensor") else value
