"""Deterministic validation loss, comparable across runs whatever they trained with.

DLM runs are scored by the fixed uniform-t estimate of the negative ELBO (eq. 9 with w(t)), even
when training used the curriculum or the MaskGIT loss; uniform-kernel runs by the same surrogate
they train on. AR runs by the mean next-token NLL. All in nats per token.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import ObjectiveConfig
from .noise import Noise
from .objectives import per_sequence_loss

_SEED_MIX = 0x9E3779B97F4A7C15  # a large odd constant: distinct (seed, index) -> distinct seeds


def _vocab_size(model: nn.Module) -> int:
    for candidate in (model, getattr(model, "module", None)):  # DDP wraps in .module
        cfg = getattr(candidate, "cfg", None)
        if cfg is not None:
            return cfg.vocab_size
    raise ValueError("validation_loss needs model.cfg.vocab_size for the uniform kernel")


def sequence_noise(
    cfg: ObjectiveConfig, seed: int, index: int, samples: int, seq_len: int, vocab_size: int
) -> Noise:
    """The noise of validation sequence `index`: `samples` rows with stratified t.

    Keyed by (seed, index) alone, so a sequence's estimate does not depend on the batch size,
    on the other sequences, or on the rank that computes it.
    """
    generator = torch.Generator().manual_seed((seed * _SEED_MIX + index) % 2**63)
    offset = torch.rand(1, generator=generator)
    strata = (torch.arange(samples, dtype=torch.float32) + offset) / samples
    t = cfg.t_min + (1 - cfg.t_min) * strata
    u = torch.rand(samples, seq_len, generator=generator)
    if cfg.kernel == "uniform":
        shape = (samples, seq_len)
        replacement = torch.randint(0, vocab_size - 1, shape, generator=generator)
    else:
        replacement = torch.empty(samples, 0, dtype=torch.long)
    return Noise(t, u, replacement)


@torch.no_grad()
def validation_loss(
    model: nn.Module,
    tokens: torch.Tensor,
    cfg: ObjectiveConfig,
    mask_token_id: int,
    seed: int,
    samples_per_sequence: int = 4,
    batch_size: int = 32,
) -> float:
    """Mean loss over tokens (n, L) in nats per token; batch_size rows per forward pass.

    DLM: samples_per_sequence Monte-Carlo draws per sequence, t stratified across them.
    Every rank must call this with the same tokens (FSDP needs all ranks in each forward).
    """
    if samples_per_sequence < 1 or batch_size < 1:
        raise ValueError("samples_per_sequence and batch_size must be >= 1")
    was_training = model.training
    model.eval()
    try:
        if cfg.kind == "ar":
            return _ar_validation(model, tokens, cfg, mask_token_id, batch_size)
        return _dlm_validation(model, tokens, cfg, mask_token_id, seed, samples_per_sequence,
                               batch_size)
    finally:
        model.train(was_training)


def _ar_validation(
    model: nn.Module, tokens: torch.Tensor, cfg: ObjectiveConfig, mask_token_id: int,
    batch_size: int,
) -> float:
    n = tokens.shape[0]
    empty = Noise(torch.zeros(0), torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.long))
    total = 0.0
    for start in range(0, n, batch_size):
        out = per_sequence_loss(model, tokens[start : start + batch_size], empty, cfg,
                                mask_token_id)
        total += out.per_sequence.double().sum().item()
    return total / n


def _dlm_validation(
    model: nn.Module, tokens: torch.Tensor, cfg: ObjectiveConfig, mask_token_id: int, seed: int,
    samples: int, batch_size: int,
) -> float:
    # The fixed estimator: uniform (stratified) t and the w(t)-weighted ELBO, always.
    eval_cfg = dataclasses.replace(cfg, loss="elbo", timesteps="uniform")
    n, seq_len = tokens.shape
    vocab_size = _vocab_size(model) if cfg.kernel == "uniform" else 0
    total, rows = 0.0, n * samples
    for start in range(0, rows, batch_size):
        stop = min(start + batch_size, rows)
        first, last = start // samples, (stop - 1) // samples  # sequences this chunk touches
        parts = [sequence_noise(eval_cfg, seed, j, samples, seq_len, vocab_size)
                 for j in range(first, last + 1)]
        noise = Noise(*(torch.cat(field) for field in zip(*(
            (p.t, p.u, p.replacement) for p in parts), strict=True)))
        noise = noise.rows(start - first * samples, stop - first * samples)
        row_tokens = tokens[torch.arange(start, stop, device=tokens.device) // samples]
        out = per_sequence_loss(model, row_tokens, noise, eval_cfg, mask_token_id)
        total += out.per_sequence.double().sum().item()
    return total / rows
