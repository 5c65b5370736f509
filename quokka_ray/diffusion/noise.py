"""The randomness of a batch (Noise), how it is drawn, and how it corrupts clean tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ObjectiveConfig
from .schedules import Schedule
from .timesteps import sample_timesteps


@dataclass(frozen=True)
class Noise:
    """Everything random about one batch's corruption, drawn before the data is seen.

    For AR objectives u and replacement have zero columns and t is all zeros (unused).
    """

    t: torch.Tensor
    """(B,) float: diffusion time of each sequence, in [t_min, 1]."""
    u: torch.Tensor
    """(B, L) float in [0, 1): token i is corrupted iff u < 1 - alpha(t)."""
    replacement: torch.Tensor
    """(B, L) long in [0, V - 2], uniform kernel only: index into the real vocabulary with the
    mask token skipped (value r means token r, or r + 1 from the mask token's id on), so a
    replacement is never the mask token whatever its id. (B, 0) for the masked kernel."""

    def rows(self, start: int, stop: int) -> Noise:
        """Rows start..stop-1: a worker's or micro-batch's share of the global batch."""
        return Noise(self.t[start:stop], self.u[start:stop], self.replacement[start:stop])

    def to(self, device: torch.device | str) -> Noise:
        return Noise(*(to_device(x, torch.device(device)) for x in (self.t, self.u,
                                                                     self.replacement)))


def draw_noise(
    cfg: ObjectiveConfig,
    batch_size: int,
    seq_len: int,
    vocab_size: int,
    generator: torch.Generator,
    progress: float,
) -> Noise:
    """A pure function of its arguments (and the generator's state), on the generator's device.

    vocab_size counts the mask token; replacements are drawn from the other vocab_size - 1.
    """
    device = generator.device
    if cfg.kind == "ar":
        empty = torch.empty(batch_size, 0, device=device)
        return Noise(torch.zeros(batch_size, device=device), empty, empty.long())
    # Draw order is fixed (t, u, replacement) so the same generator state gives the same noise.
    t = sample_timesteps(cfg, batch_size, generator, progress)
    u = torch.rand(batch_size, seq_len, generator=generator, device=device)
    if cfg.kernel == "uniform":
        shape = (batch_size, seq_len)
        replacement = torch.randint(0, vocab_size - 1, shape, generator=generator, device=device)
    else:
        replacement = torch.empty(batch_size, 0, dtype=torch.long, device=device)
    return Noise(t, u, replacement)


def to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`values` on `device`. From the host to a GPU the copy goes through pinned memory and
    does not block: a plain copy would make the host wait for every kernel queued so far."""
    if values.device == device:
        return values
    if values.device.type == "cpu" and device.type == "cuda":
        return values.pin_memory().to(device, non_blocking=True)
    return values.to(device)


def corruption_mask(noise: Noise, schedule: Schedule) -> torch.Tensor:
    """(b, L) bool, on the noise's device: which tokens the noise corrupts."""
    alpha = schedule.alpha(noise.t.float())  # (b,)
    return noise.u < (1 - alpha)[:, None]


def corrupt(
    tokens: torch.Tensor, noise: Noise, schedule: Schedule, kernel: str, mask_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy tokens (b, L), corrupted (b, L) bool) for clean tokens (b, L)."""
    corrupted = corruption_mask(noise, schedule)  # (b, L)
    if kernel == "masked":
        return torch.where(corrupted, mask_token_id, tokens), corrupted
    replacement = noise.replacement + (noise.replacement >= mask_token_id).long()
    return torch.where(corrupted, replacement, tokens), corrupted
