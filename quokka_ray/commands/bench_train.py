"""`quokka bench train`: training throughput on this machine's device, without Ray.

Given an experiment file, the training loop itself (`loop.train`) trains one of its trials as a
one-worker Ray Train run does (in a process group of one), and the time of its steps is measured
whole: data, noise, metrics and optimizer included, in wall and in CPU seconds.

Without one, the model's own step (forward, backward, AdamW on random tokens) through the
loop's parts: FSDP2 with its mixed-precision policy, the loop's AdamW, per-block
`torch.compile`, the masked-only output head; each part can be switched off to measure what it
brings."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import asdict, fields, replace

import torch
import torch.distributed as dist

from quokka_ray.commands.bench_train_args import (  # noqa: F401 (re-exported)
    LOOP_STEPS,
    LOOP_WARMUP_STEPS,
    WARMUP_STEPS,
    TrainBenchSettings,
    add_bench_train_arguments,
    add_bench_train_parser,
)
from quokka_ray.config import ConfigError, require
from quokka_ray.data import prepare_shards
from quokka_ray.diffusion import ObjectiveConfig, draw_noise, per_sequence_loss
from quokka_ray.model import (
    Transformer,
    flops_per_token,
    non_embedding_params,
    output_flops_per_token,
    size_model,
)
from quokka_ray.train.config import (
    Hyperparameters,
    PerformanceConfig,
    TrainConfig,
)
from quokka_ray.train.fsdp import is_sharded, shard_model
from quokka_ray.train.loop import build_optimizer, compute_context, train
from quokka_ray.train.throughput import mfu, peak_flops_per_device
from quokka_ray.train.tracker import NullTracker


def run_train_benchmark(settings: TrainBenchSettings, as_json: bool = False) -> dict:
    device = (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
              else torch.device("cpu"))
    if settings.fsdp and not dist.is_initialized():
        _one_process_group(device)
    kind, seq_len, batch = settings.kind, settings.seq_len, settings.batch_sequences
    objective = ObjectiveConfig(kind=kind)
    cfg = size_model(settings.non_embedding_params, settings.vocab_size, seq_len,
                     causal=kind == "ar")
    if settings.attention == "flash_attn":
        cfg = replace(cfg, attention_backend="flash_attn")
    performance = PerformanceConfig(compile=settings.compile,
                                    activation_checkpointing=settings.activation_checkpointing,
                                    attention=settings.attention)
    torch.manual_seed(0)
    model = shard_model(Transformer(cfg).to(device), device, performance, shard=settings.fsdp)
    if not settings.masked_head:
        model.selects_positions = False  # the full head, for comparison
    optimizer = build_optimizer(model, Hyperparameters(lr=1e-4), fused=settings.fused_adamw)
    sharded = is_sharded(model)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, settings.vocab_size - 1, (batch, seq_len), generator=generator)
    tokens = tokens.to(device)
    head_positions = []

    def step() -> None:
        noise = draw_noise(objective, batch, seq_len, settings.vocab_size, generator, 0.5)
        with compute_context(device, sharded, performance):
            out = per_sequence_loss(model, tokens, noise, objective, settings.vocab_size - 1)
        out.per_sequence.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        head_positions.append(out.output_positions if out.output_positions is not None
                              else torch.tensor(float(tokens.numel())))

    started = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        step()
    _synchronize(device)
    warmup_seconds = time.perf_counter() - started
    head_positions.clear()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(settings.steps):
        step()
    _synchronize(device)
    seconds = (time.perf_counter() - start) / settings.steps
    tokens_per_s = batch * seq_len / seconds
    # FLOPs actually executed: the masked-only head runs the output layer on masked positions
    # (activation checkpointing's recomputation is not counted: MFU counts model FLOPs).
    head_share = float(sum(float(n) for n in head_positions)) / (settings.steps * tokens.numel())
    flops_tok = flops_per_token(cfg, seq_len) - (1 - head_share) * output_flops_per_token(cfg)
    utilisation = mfu(flops_tok, tokens_per_s, peak_flops_per_device(device), 1)
    name = _device_name(device)
    result = {**asdict(settings), "device": name, "torch": torch.__version__,
              "params": non_embedding_params(cfg), "n_layers": cfg.n_layers,
              "d_model": cfg.d_model, "compiled": performance.compiles(device),
              "step_seconds": seconds, "warmup_seconds": warmup_seconds,
              "tokens_per_s": tokens_per_s, "flops_per_token": flops_tok,
              "head_share": head_share, "mfu": utilisation,
              "peak_memory_gb": (torch.cuda.max_memory_allocated(device) / 2**30
                                 if device.type == "cuda" else None)}
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        parts = [p for p, on in (("fsdp-bf16" if device.type == "cuda" else "fsdp", settings.fsdp),
                                 ("compiled", result["compiled"]),
                                 ("fused-adamw", settings.fused_adamw and device.type == "cuda"),
                                 ("masked-head", settings.masked_head and kind == "dlm"),
                                 ("act-ckpt", settings.activation_checkpointing)) if on]
        print(f"device {name}: {kind} N={result['params']:,} ({cfg.n_layers}x{cfg.d_model}), "
              f"seq {seq_len}, batch {batch} [{', '.join(parts) or 'eager'}]: "
              f"{seconds * 1e3:.1f} ms/step, {tokens_per_s:,.0f} tokens/s"
              + (f", MFU {utilisation:.1%}" if utilisation is not None else
                 " (MFU: no known peak)"), flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()
    return result


class _StepClock(NullTracker):
    """A tracker that notes the wall and process CPU time at the end of each read-back of the
    loop's step metrics, and every step's executed FLOPs."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float, float]] = []  # (step, wall s, process CPU s)
        self.executed_flops: dict[int, float] = {}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if "executed_flops" not in metrics:  # a validation row
            return
        self.executed_flops[step] = metrics["executed_flops"]
        # The loop computes param_norm at the last step of each read-back, its newest step.
        if "param_norm" in metrics:
            self.marks.append((step, time.perf_counter(), time.process_time()))



def run_loop_benchmark(cfg: TrainConfig, trial: str, as_json: bool = False) -> dict:
    """Train `cfg` with `loop.train` on one worker (its shards prepared first where they are
    not), in a process group of one as Ray Train gives a one-worker run, and time its steps
    after LOOP_WARMUP_STEPS: wall and CPU seconds (every thread of this process: the data
    reader's too) per step, tokens/s, and the training FLOPs executed per CPU second (per core:
    the loop's torch threads are cfg.cpu_threads_per_worker)."""
    # Validation and a checkpoint at the end alone, after the last timed step.
    cfg = replace(cfg, checkpoint_every_steps=cfg.total_steps, checkpoint_at_steps=(),
                  evaluation=replace(cfg.evaluation, eval_every_steps=0))
    read_backs = {*range(cfg.log_every_steps, cfg.total_steps, cfg.log_every_steps),
                  cfg.total_steps}
    require(len([s for s in read_backs if s >= LOOP_WARMUP_STEPS]) >= 2,
            "quokka bench train --steps", cfg.total_steps,
            f"enough steps for two read-backs of the step metrics (every "
            f"{cfg.log_every_steps} steps) after {LOOP_WARMUP_STEPS} warm-up steps")
    prepare_shards(cfg.data)  # once per corpus: a no-op where they are prepared
    device = (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
              else torch.device("cpu"))
    owns_group = not dist.is_initialized()
    if owns_group:
        _one_process_group(device)
    clock = _StepClock()
    try:
        train(cfg, rank=0, world_size=1, device=device, report=lambda metrics, folder: None,
              tracker=clock)
    finally:
        if owns_group:
            dist.destroy_process_group()
    timed = [m for m in clock.marks if m[0] >= LOOP_WARMUP_STEPS]
    (first, wall0, cpu0), (last, wall1, cpu1) = timed[0], timed[-1]
    steps = last - first
    wall_s, cpu_s = (wall1 - wall0) / steps, (cpu1 - cpu0) / steps
    flops = sum(clock.executed_flops[s] for s in range(first + 1, last + 1)) / steps
    utilisation = mfu(flops / cfg.batch_tokens, cfg.batch_tokens / wall_s,
                      peak_flops_per_device(device), 1)
    result = {"trial": trial, "device": _device_name(device), "torch": torch.__version__,
              "params": non_embedding_params(cfg.model), "n_layers": cfg.model.n_layers,
              "d_model": cfg.model.d_model, "batch_tokens": cfg.batch_tokens,
              "threads": cfg.cpu_threads_per_worker, "timed_steps": [first + 1, last],
              "step_wall_seconds": wall_s, "step_cpu_seconds": cpu_s,
              "tokens_per_s": cfg.batch_tokens / wall_s, "executed_flops_per_step": flops,
              "flops_per_cpu_second": flops / cpu_s, "mfu": utilisation}
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        print(f"device {result['device']}: the loop on {trial}, N={result['params']:,} "
              f"({cfg.model.n_layers}x{cfg.model.d_model}), {cfg.batch_tokens:,} tokens a step, "
              f"{cfg.cpu_threads_per_worker} torch thread(s), steps {first + 1}-{last}: "
              f"{wall_s * 1e3:.2f} ms/step wall, {cpu_s * 1e3:.2f} ms/step CPU, "
              f"{result['tokens_per_s']:,.0f} tokens/s, {flops:.3g} FLOPs a step, "
              f"{flops / cpu_s / 1e9:.2f} GFLOP/s per CPU second"
              + (f", MFU {utilisation:.1%}" if utilisation is not None else ""), flush=True)
    return result


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _one_process_group(device: torch.device) -> None:
    """A process group of this process alone: what Ray Train gives a one-worker run, and what
    FSDP2 (and its mixed-precision policy) needs to run at all."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(port))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)



def bench_train_command(args: argparse.Namespace) -> int:
    model_options = {f.name: getattr(args, f.name) for f in fields(TrainBenchSettings)
                     if f.name != "steps" and getattr(args, f.name) is not None}
    if args.experiment_file is None:
        for flag, value in (("--set", args.set), ("--trial", args.trial),
                            ("--storage-path", args.storage_path)):
            require(value is None, f"quokka bench train {flag}", value,
                    "an experiment file to go with it")
        steps = {} if args.steps is None else {"steps": args.steps}
        run_train_benchmark(TrainBenchSettings(**model_options, **steps), as_json=args.json)
        return 0
    if model_options:
        name = next(iter(model_options))
        raise ConfigError(f"quokka bench train --{name.replace('_', '-')}: the trial of "
                          f"{args.experiment_file} sets its model and its step itself")
    from quokka_ray.data import with_root
    from quokka_ray.sweep.driver import resolve_storage_path
    from quokka_ray.sweep.loader import checked_trials, load_experiment_file
    from quokka_ray.sweep.settings import parse_assignments
    from quokka_ray.sweep.single_run import single_run_config

    experiment, _ = load_experiment_file(args.experiment_file, parse_assignments(args.set))
    trials = checked_trials(args.experiment_file, experiment)
    spec, cfg = single_run_config(experiment, trials, args.trial,
                                  LOOP_STEPS if args.steps is None else args.steps)
    storage = resolve_storage_path(args.storage_path or experiment.storage_path)
    cfg = replace(cfg, data=with_root(cfg.data, storage))
    run_loop_benchmark(cfg, spec.name, as_json=args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m quokka_ray.commands.bench_train ...`: the same command as a script."""
    parser = argparse.ArgumentParser(prog="quokka bench train", description=__doc__)
    add_bench_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return bench_train_command(args)
    except (ConfigError, LookupError, ValueError, OSError) as err:
        print(f"quokka: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
