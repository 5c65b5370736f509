"""The training loop of one run on one worker. Pure PyTorch: Ray reaches it only through the
`report` callback (metrics, optionally with a checkpoint folder) that `ray_worker` supplies.

Reproducibility: the batch at step s and its diffusion noise are drawn for the whole global
batch from (seed, s), and each worker takes its rows, so the trajectory is the same on any
number of workers and after a resume from a checkpoint."""

from __future__ import annotations

import math
import resource
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
import torch

from quokka_ray.data import BatchPrefetcher, PackedCorpus, rank_rows
from quokka_ray.diffusion import draw_noise, per_sequence_loss, to_device, validation_loss
from quokka_ray.model import Transformer, flops_per_token, output_flops_per_token
from quokka_ray.train import checkpoint
from quokka_ray.train.config import Hyperparameters, TrainConfig
from quokka_ray.train.fsdp import all_reduce_max, all_reduce_sum, is_sharded, shard_model
from quokka_ray.train.lr_schedule import lr_at
from quokka_ray.train.smoothing import smooth_final_loss
from quokka_ray.train.throughput import mfu, peak_flops_per_device
from quokka_ray.train.tracker import NullTracker, Tracker

Report = Callable[[dict[str, float], "Path | None"], None]


def build_optimizer(model: torch.nn.Module, hyper: Hyperparameters,
                    fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW; fused (one kernel launch per parameter group) on CUDA unless `fused` says."""
    # Norm gains (1-D) are not decayed: decay would pull them towards zero, not towards identity.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    on_cuda = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": hyper.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=hyper.lr, betas=hyper.betas, eps=hyper.eps,
        fused=on_cuda if fused is None else fused and on_cuda,
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
    model = shard_model(Transformer(cfg.model).to(device), device, cfg.performance,
                        shard=world_size > 1)
    optimizer = build_optimizer(model, cfg.hyperparameters)
    parameters = list(model.parameters())  # walked every step: the module tree once
    state = checkpoint.load(resume_from, model, optimizer) if resume_from else checkpoint.TrainState()

    validation = torch.from_numpy(data.validation).to(device)
    flops_tok = flops_per_token(cfg.model, cfg.data.seq_len)
    head_flops_tok = output_flops_per_token(cfg.model)
    peak = peak_flops_per_device(device)
    start, stop = rank_rows(batch_sequences, world_size, rank)
    micro_steps = math.ceil(math.ceil(batch_sequences / world_size) / cfg.micro_batch_sequences)
    compute = partial(compute_context, device, is_sharded(model), cfg.performance)
    bytes_per_token = data.manifest["bytes_per_token"]  # known for byte-level tokens only

    def evaluate() -> dict[str, float]:
        """Validation (every worker, same data) and the smoothed training loss so far."""
        history = np.asarray(state.loss_history)
        metrics = {"step": float(state.step), "train_loss": float(history[-1]),
                   "final_loss": smooth_final_loss(history, cfg.smoothing_lookback_steps),
                   "val_loss": _validate(model, validation, cfg, mask_id, compute)}
        if bytes_per_token:
            metrics["val_bpb"] = metrics["val_loss"] / math.log(2) / bytes_per_token
        # train_loss of this step is already logged with the step's other metrics.
        tracker.log_metrics({k: v for k, v in metrics.items() if k not in ("step", "train_loss")},
                            step=state.step)
        tracker.flush()
        return metrics

    # This worker's rows of each global batch, read ahead; the order is f(seed, epoch) alone.
    batches = BatchPrefetcher(data.train, seed=cfg.seed, global_batch_sequences=batch_sequences,
                              unique_sequences=unique, rows=(start, stop), first_step=state.step)
    tokens_per_s = 0.0
    metrics: dict[str, float] | None = None
    pending: list = []  # device-side metrics of the steps since the last read-back
    window_start = time.perf_counter()  # of the steps in `pending`
    model.train()  # once: validation puts the model back in training mode when it is done
    try:
        while state.step < cfg.total_steps:
            step = state.step
            lr = lr_at(step, cfg.total_steps, cfg.hyperparameters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = torch.Generator().manual_seed(step_seed(cfg.seed, step))
            noise = draw_noise(cfg.objective, batch_sequences, cfg.data.seq_len,
                               cfg.model.vocab_size, generator,
                               progress=step / max(1, cfg.total_steps - 1)).rows(start, stop)
            tokens = to_device(torch.from_numpy(batches.get(step)), device)

            sums: dict[str, torch.Tensor] = {}
            head_positions = torch.zeros((), device=device)
            max_logit = torch.zeros((), device=device)
            for rows in np.array_split(np.arange(stop - start), micro_steps):
                lo, hi = int(rows[0]), int(rows[-1]) + 1
                with compute():
                    # The noise stays on the host: the loss sends what it needs.
                    out = per_sequence_loss(model, tokens[lo:hi], noise.rows(lo, hi),
                                            cfg.objective, mask_id)
                # Sum over this worker's rows / global batch; FSDP averages gradients over the
                # workers, so scaling by world_size makes the result the global-batch mean.
                loss = out.per_sequence.sum() * (world_size / batch_sequences)
                loss.backward()
                for name, values in {"loss": out.per_sequence, **out.metrics}.items():
                    sums[name] = sums.get(name, 0.0) + values.detach().float().sum()
                head_positions += (out.output_positions if out.output_positions is not None
                                   else tokens[lo:hi].numel())
                if out.max_abs_logit is not None:
                    max_logit = torch.maximum(max_logit, out.max_abs_logit.float())
            clip = cfg.hyperparameters.grad_clip_norm
            grad_norm = (torch.nn.utils.clip_grad_norm_(parameters, clip)
                         if clip > 0 else torch.zeros((), device=device))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            # Collectives on device tensors (NCCL serves no CPU tensor); the host reads them back
            # only at logging steps.
            names = sorted(sums)
            totals = all_reduce_sum(torch.stack([sums[n] for n in names] + [head_positions]))
            max_logit = all_reduce_max(max_logit)
            state.step += 1
            pending.append((state.step, lr, totals, max_logit, grad_norm))
            final = state.step == cfg.total_steps
            save = (final or state.step % cfg.checkpoint_every_steps == 0
                    or state.step in cfg.checkpoint_at_steps)
            every = cfg.evaluation.eval_every_steps
            evaluating = save or bool(every and state.step % every == 0)
            if not (evaluating or state.step % cfg.log_every_steps == 0):
                continue
            read_back = list(_drain(pending, names, batch_sequences))  # waits for the device
            # The host runs ahead of the device between reads: the time per step is the time
            # since the last read over the steps read.
            tokens_per_s = cfg.batch_tokens * len(read_back) / (time.perf_counter() - window_start)
            for logged in read_back:
                state.loss_history.append(logged.pop("train_loss_value"))
                executed = (cfg.batch_tokens * (flops_tok - head_flops_tok)
                            + logged.pop("output_positions") * head_flops_tok)
                logged.update(tokens_per_s=tokens_per_s, tokens=logged["step"] * cfg.batch_tokens,
                              executed_flops=executed, workers=world_size, **_memory(device))
                utilisation = mfu(executed / cfg.batch_tokens, tokens_per_s, peak, world_size)
                if utilisation is not None:
                    logged["mfu"] = utilisation
                if not math.isfinite(logged["train_loss"]):
                    tracker.log_metrics({**_finite(logged), "diverged": 1.0}, step=logged["step"])
                    tracker.flush()
                    raise Diverged(logged["step"], logged["train_loss"])
                step = logged.pop("step")
                if step == state.step:  # the weights of this step are the model's now
                    logged["param_norm"] = float(_full_tensor(torch.nn.utils.get_total_norm(
                        [p.detach() for p in parameters])))
                tracker.log_metrics(logged, step=step)

            # Every report carries val_loss, so that Tune's schedulers can compare any two.
            if evaluating:
                metrics = evaluate()
                metrics["tokens_per_s"] = tokens_per_s
                if save:
                    with tempfile.TemporaryDirectory(prefix="quokka-ckpt-") as folder:
                        checkpoint.save(Path(folder), model, optimizer, state, rank)
                        report(metrics, Path(folder))
                else:
                    report(metrics, None)
            window_start = time.perf_counter()
    finally:
        batches.close()
    if metrics is None:  # resumed from the final checkpoint: nothing left to train
        metrics = evaluate()
        report(metrics, None)
    tracker.flush()
    return metrics


def _validate(model, validation: torch.Tensor, cfg: TrainConfig, mask_id: int, compute) -> float:
    with compute():
        return validation_loss(
            model, validation, cfg.objective, mask_id, seed=cfg.evaluation.seed,
            samples_per_sequence=cfg.evaluation.validation_samples_per_sequence)


def _full_tensor(value: torch.Tensor) -> torch.Tensor:
    return value.full_tensor() if hasattr(value, "full_tensor") else value


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops, and is not retried."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"training loss {loss} at step {step}: the run diverged")
        self.step, self.loss = step, loss


def _drain(pending: list, names: list[str], batch_sequences: int):
    """The per-step metrics of the steps not yet read back, oldest first (one host sync)."""
    if not pending:
        return
    values = torch.stack([p[2] for p in pending]).cpu().numpy()
    extra = torch.stack([torch.stack([p[3].float(), _full_tensor(p[4]).float()])
                         for p in pending]).cpu().numpy()
    for (step, lr, _, _, _), row, (max_logit, grad_norm) in zip(
            pending, values, extra, strict=True):
        logged = {f"train_{n}" if n != "loss" else "train_loss": float(v) / batch_sequences
                  for n, v in zip(names, row[:-1], strict=True)}
        logged.update(step=step, learning_rate=lr, grad_norm=float(grad_norm),
                      max_abs_logit=float(max_logit), output_positions=float(row[-1]),
                      train_loss_value=logged["train_loss"])
        yield logged
    pending.clear()


def compute_context(device: torch.device, sharded: bool, performance) -> ExitStack:
    """Where a forward pass runs: on GPUs FSDP2 computes in bf16 (its mixed-precision policy,
    fsdp.py), and without a process group (one process, tests) bf16 autocast does the same;
    fp32 on CPUs. The attention kernel is forced where PerformanceConfig names one."""
    stack = ExitStack()
    if device.type == "cuda" and not sharded:
        stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
    backend = performance.sdpa_backend()
    if backend is not None:
        from torch.nn.attention import sdpa_kernel

        stack.enter_context(sdpa_kernel(backend))
    return stack


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)}


def _memory(device: torch.device) -> dict[str, float]:
    """Peak memory so far: the accelerator's allocations, or the process's resident set."""
    if device.type == "cuda":
        return {"peak_device_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30}
    return {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
