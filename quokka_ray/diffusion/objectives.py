"""Per-sequence training losses: masked-diffusion ELBO / MaskGIT, the uniform-kernel surrogate,
and AR next-token cross-entropy. The training loop averages `per_sequence` over the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ObjectiveConfig
from .noise import Noise, corrupt, corruption_mask, to_device
from .schedules import Schedule, get_schedule


@dataclass(frozen=True)
class LossOutput:
    per_sequence: torch.Tensor
    """(b,) loss of each sequence, in nats per token; differentiable."""
    metrics: dict[str, torch.Tensor]
    """Per-sequence values to log, each (b,), detached."""
    output_positions: torch.Tensor | None = None
    """How many positions the output layer ran on (a 0-d count); None: all of them."""
    max_abs_logit: torch.Tensor | None = None
    """Largest |logit| computed (0-d, detached): a warning sign of divergence."""


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CE of targets (b, L) under logits (b, L, V), per token (b, L), computed in fp32."""
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view(targets.shape)


def ar_loss(model: nn.Module, tokens: torch.Tensor) -> LossOutput:
    """Next-token CE, mean over the L - 1 predicted positions of each sequence.

    The whole sequence is fed (the last logit is unused) so that an AR and a DLM run of one
    shape see the same sequence length and FLOPs per token.
    """
    logits = model(tokens)  # (b, L, V)
    ce = token_cross_entropy(logits[:, :-1], tokens[:, 1:])  # (b, L - 1)
    return LossOutput(per_sequence=ce.mean(dim=1), metrics={},
                      max_abs_logit=logits.detach().abs().max())


def _corrupted_term(
    loss: str, schedule: Schedule, t: torch.Tensor, corrupted_ce_sum: torch.Tensor,
    n_corrupted: torch.Tensor, seq_len: int,
) -> torch.Tensor:
    if loss == "elbo":  # Quokka eq. 9: (1/L) w(t) sum_corrupted CE
        return schedule.weight(t) * corrupted_ce_sum / seq_len
    if loss == "maskgit":  # eq. 9 with w = 1
        return corrupted_ce_sum / seq_len
    # elbo_realized_masked: L (1 - alpha_t) replaced by the realized count (a sum of 0 if none).
    return -schedule.alpha_prime(t) * corrupted_ce_sum / n_corrupted.clamp(min=1)


def per_sequence_loss(
    model: nn.Module, tokens: torch.Tensor, noise: Noise, cfg: ObjectiveConfig, mask_token_id: int
) -> LossOutput:
    """The loss of each sequence of tokens (b, L) under the objective `cfg`.

    Masked kernel: the negative-ELBO estimate of eq. 9 (or its MaskGIT / realized-count
    variants), whose batch mean estimates the negative ELBO in nats per token.

    Uniform kernel: a *surrogate*, not a negative ELBO (Quokka's choice): the masked weighting
    applied to the corrupted positions plus the CE averaged over the clean positions, with t
    given to the model. Its two parts are logged as loss_corrupted and loss_clean.
    """
    if cfg.kind == "ar":
        return ar_loss(model, tokens)
    schedule = get_schedule(cfg.schedule)
    if cfg.kernel == "masked" and getattr(model, "selects_positions", False):
        return _masked_positions_loss(model, tokens, noise, cfg, schedule, mask_token_id)
    noise = noise.to(tokens.device)
    noisy, corrupted = corrupt(tokens, noise, schedule, cfg.kernel, mask_token_id)
    t = noise.t.float()
    seq_len = tokens.shape[1]
    is_corrupted = corrupted.float()
    n_corrupted = is_corrupted.sum(dim=1)  # (b,)
    metrics = {"t": t.detach(), "corrupted_fraction": n_corrupted / seq_len}
    logits = model(noisy, t) if cfg.needs_time_embedding else model(noisy)  # (b, L, V)
    ce = token_cross_entropy(logits, tokens)  # (b, L)
    corrupted_term = _corrupted_term(
        cfg.loss, schedule, t, (ce * is_corrupted).sum(dim=1), n_corrupted, seq_len
    )
    if cfg.kernel == "masked":
        return LossOutput(per_sequence=corrupted_term, metrics=metrics,
                          max_abs_logit=_max_abs(logits))
    n_clean = seq_len - n_corrupted
    clean_term = (ce * (1 - is_corrupted)).sum(dim=1) / n_clean.clamp(min=1)
    metrics["loss_corrupted"] = corrupted_term.detach()
    metrics["loss_clean"] = clean_term.detach()
    return LossOutput(per_sequence=corrupted_term + clean_term, metrics=metrics,
                      max_abs_logit=_max_abs(logits))


def _masked_positions_loss(
    model: nn.Module, tokens: torch.Tensor, noise: Noise, cfg: ObjectiveConfig,
    schedule: Schedule, mask_token_id: int,
) -> LossOutput:
    """The masked kernel's loss with the output layer and the CE on the masked positions alone
    (about half of them at uniform t): the same loss as the full head, fewer FLOPs.

    The mask and the masked positions' indices are computed where the noise was drawn (the
    host, in the training loop) and sent to the device without waiting: selecting them on the
    device (a boolean index, nonzero) would make the host wait for every queued kernel."""
    device, (b, seq_len) = tokens.device, tokens.shape
    corrupted_here = corruption_mask(noise, schedule)  # (b, L) bool, on the noise's device
    index_here = corrupted_here.flatten().nonzero().squeeze(1)  # row-major order
    corrupted, index = to_device(corrupted_here, device), to_device(index_here, device)
    t = to_device(noise.t, device).float()
    noisy = torch.where(corrupted, mask_token_id, tokens)
    logits = model(noisy, positions=index)  # (n, V)
    ce = F.cross_entropy(logits.float(), tokens.flatten().index_select(0, index),
                         reduction="none")  # (n,)
    ce_sum = torch.zeros(b, dtype=ce.dtype, device=device).index_add(0, index // seq_len, ce)
    n_corrupted = corrupted.float().sum(dim=1)  # (b,)
    metrics = {"t": t.detach(), "corrupted_fraction": n_corrupted / seq_len}
    return LossOutput(
        per_sequence=_corrupted_term(cfg.loss, schedule, t, ce_sum, n_corrupted, seq_len),
        metrics=metrics, output_positions=torch.tensor(float(index_here.numel())),
        max_abs_logit=_max_abs(logits))


def _max_abs(logits: torch.Tensor) -> torch.Tensor:
    detached = logits.detach()
    return detached.abs().max() if detached.numel() else detached.new_zeros(())
