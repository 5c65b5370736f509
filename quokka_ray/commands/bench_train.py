"""`quokka bench train`: training throughput (tokens/s) and MFU of one model on this machine's
device, without Ray, through the training loop's own parts: FSDP2 with its mixed-precision
policy, the loop's AdamW, per-block `torch.compile`, the masked-only output head. Each part can
be switched off to measure what it brings."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.distributed as dist

from quokka_ray.config import require
from quokka_ray.diffusion import ObjectiveConfig, draw_noise, per_sequence_loss
from quokka_ray.model import (
    Transformer,
    flops_per_token,
    non_embedding_params,
    output_flops_per_token,
    size_model,
)
from quokka_ray.train.config import AttentionKernel, Hyperparameters, PerformanceConfig
from quokka_ray.train.fsdp import is_sharded, shard_model
from quokka_ray.train.loop import build_optimizer, compute_context
from quokka_ray.train.throughput import mfu, peak_flops_per_device

WARMUP_STEPS = 3  # compilation, allocator, cuDNN/cuBLAS heuristics


@dataclass(frozen=True)
class TrainBenchSettings:
    non_embedding_params: int = 1_000_000
    seq_len: int = 256
    batch_sequences: int = 8
    steps: int = 10
    kind: str = "dlm"
    vocab_size: int = 50_304
    fsdp: bool = True
    """FSDP2 over a one-process group: on GPUs its bf16 mixed-precision policy (the loop's);
    without it, bf16 autocast over fp32 weights."""
    compile: bool | None = None
    """Per-block torch.compile; None: the loop's default (on for GPUs, off for CPUs)."""
    fused_adamw: bool = True
    masked_head: bool = True
    """The output layer on the masked positions only (masked kernel); off: on every position."""
    activation_checkpointing: bool = False
    attention: AttentionKernel = "auto"

    def __post_init__(self) -> None:
        for flag, value in (("--non-embedding-params", self.non_embedding_params),
                            ("--seq-len", self.seq_len), ("--steps", self.steps),
                            ("--batch-sequences", self.batch_sequences),
                            ("--vocab-size", self.vocab_size)):
            require(value >= 1, f"quokka bench train {flag}", value, "at least 1")
        require(self.attention != "flash_attn" or importlib.util.find_spec("flash_attn"),
                "quokka bench train --attention", self.attention,
                "an installed kernel (flash_attn needs pip install 'quokka-ray[gpu]')")


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
    model = shard_model(Transformer(cfg).to(device), device, performance)
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
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
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


def _one_process_group(device: torch.device) -> None:
    """A process group of this process alone, so that FSDP2 (and its mixed-precision policy)
    runs as it does in a one-worker Ray Train run."""
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

