"""`quokka bench train`: training throughput (tokens/s) and MFU of one model on this machine's
device, without Ray: forward + backward + AdamW on random tokens, bf16 autocast on CUDA."""

from __future__ import annotations

import time

import torch

from quokka_ray.diffusion import ObjectiveConfig, draw_noise, per_sequence_loss
from quokka_ray.model import (
    Transformer,
    flops_per_token,
    non_embedding_params,
    output_flops_per_token,
    size_model,
)
from quokka_ray.train.throughput import mfu, peak_flops_per_device


def run_train_benchmark(target_params: int, seq_len: int, batch_sequences: int, steps: int,
                        kind: str, vocab_size: int = 50_304) -> dict[str, float]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    objective = ObjectiveConfig(kind=kind)
    cfg = size_model(target_params, vocab_size, seq_len, causal=kind == "ar")
    model = Transformer(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab_size - 1, (batch_sequences, seq_len), generator=generator)
    tokens = tokens.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    head_positions: list[torch.Tensor] = []

    def step() -> None:
        noise = draw_noise(objective, batch_sequences, seq_len, vocab_size, generator, 0.5)
        with autocast:
            out = per_sequence_loss(model, tokens, noise.to(device), objective, vocab_size - 1)
        out.per_sequence.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        head_positions.append(out.output_positions if out.output_positions is not None
                              else torch.tensor(tokens.numel()))

    for _ in range(3):  # warm-up: kernels, allocator
        step()
    head_positions.clear()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    tokens_per_s = batch_sequences * seq_len / seconds
    # FLOPs actually executed: the masked-only head runs the output layer on masked positions.
    head_share = float(sum(int(n) for n in head_positions)) / (steps * tokens.numel())
    flops_tok = flops_per_token(cfg, seq_len) - (1 - head_share) * output_flops_per_token(cfg)
    utilisation = mfu(flops_tok, tokens_per_s, peak_flops_per_device(device), 1)
    result = {"non_embedding_params": non_embedding_params(cfg), "n_layers": cfg.n_layers,
              "d_model": cfg.d_model, "seq_len": seq_len, "batch_sequences": batch_sequences,
              "step_seconds": seconds, "tokens_per_s": tokens_per_s,
              "flops_per_token": flops_tok, "mfu": utilisation}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}: {kind} N={result['non_embedding_params']:,} "
          f"({cfg.n_layers}x{cfg.d_model}), seq {seq_len}, batch {batch_sequences}: "
          f"{seconds * 1e3:.1f} ms/step, {tokens_per_s:,.0f} tokens/s"
          + (f", MFU {utilisation:.1%}" if utilisation is not None else " (MFU: no known peak)"))
    return result
