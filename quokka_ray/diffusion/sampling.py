"""Sampling: ancestral unmasking for masked DLMs, token by token for AR models."""

from __future__ import annotations

import torch
from torch import nn

from .schedules import Schedule, get_schedule


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device):
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def sample_categorical(
    logits: torch.Tensor, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    """One draw per row of logits (..., V) by the Gumbel-max trick; temperature 0 is argmax."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    u = _rand(tuple(logits.shape), generator, logits.device).clamp_min(1e-20)
    return (logits.float() / temperature - torch.log(-torch.log(u))).argmax(dim=-1)


def _with_prompt(x: torch.Tensor, prompt: torch.Tensor | None) -> int:
    if prompt is None:
        return 0
    prompt = prompt.to(x.device)
    if prompt.dim() == 1:
        prompt = prompt.expand(x.shape[0], -1)
    x[:, : prompt.shape[1]] = prompt
    return prompt.shape[1]


@torch.no_grad()
def sample_dlm(
    model: nn.Module,
    n: int,
    seq_len: int,
    steps: int,
    mask_token_id: int,
    schedule: Schedule | str,
    generator: torch.Generator,
    prompt: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """n sequences (n, seq_len) by ancestral sampling of the absorbing process.

    Time goes from 1 to 0 in `steps` equal steps. Going from t to s < t, each still-masked
    position is revealed with probability (alpha(s) - alpha(t)) / (1 - alpha(t)), the reverse
    process's unmasking probability, and takes a token drawn from the model's prediction with
    the mask token excluded; revealed tokens stay. At the last step alpha(0) = 1 reveals every
    remaining position, so no mask token is left. prompt (p,) or (n, p) fixes the first tokens.
    """
    if getattr(getattr(model, "cfg", None), "time_embedding", False):
        raise ValueError("sample_dlm samples the masked (absorbing) process; this model has a "
                         "time embedding (uniform kernel), whose reverse process differs")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    schedule = get_schedule(schedule) if isinstance(schedule, str) else schedule
    was_training = model.training
    model.eval()
    try:
        x = torch.full((n, seq_len), mask_token_id, dtype=torch.long, device=_device(model))
        _with_prompt(x, prompt)
        times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        for i in range(steps):
            alpha_t, alpha_s = schedule.alpha(times[i]), schedule.alpha(times[i + 1])
            reveal_probability = float((alpha_s - alpha_t) / (1 - alpha_t))
            if i == steps - 1:
                reveal_probability = 1.0  # alpha(0) = 1 exactly, whatever the rounding
            masked = x == mask_token_id  # (n, L)
            logits = model(x).float()  # (n, L, V)
            logits[..., mask_token_id] = -torch.inf  # never propose the mask token itself
            proposal = sample_categorical(logits, temperature, generator)  # (n, L)
            reveal = masked & (_rand((n, seq_len), generator, x.device) < reveal_probability)
            x = torch.where(reveal, proposal, x)
        return x
    finally:
        model.train(was_training)


@torch.no_grad()
def sample_ar(
    model: nn.Module,
    n: int,
    seq_len: int,
    generator: torch.Generator,
    prompt: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """n sequences (n, seq_len), one token per forward pass (no KV cache: for small demos).

    AR training never predicts position 0, so without a prompt the first token is drawn
    uniformly from ids 0 .. vocab_size - 2 (the last id is the mask token by convention).
    """
    was_training = model.training
    model.eval()
    try:
        device = _device(model)
        if prompt is None:
            vocab_size = model.cfg.vocab_size
            first = torch.randint(0, vocab_size - 1, (n, 1), generator=generator,
                                  device=generator.device)
            x = first.to(device)
        else:
            x = prompt.to(device)
            x = x.expand(n, -1).clone() if x.dim() == 1 else x.clone()
        while x.shape[1] < seq_len:
            logits = model(x)[:, -1].float()  # (n, V)
            x = torch.cat([x, sample_categorical(logits, temperature, generator)[:, None]], dim=1)
        return x[:, :seq_len]
    finally:
        model.train(was_training)
