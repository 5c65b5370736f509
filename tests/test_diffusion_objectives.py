"""Objectives: corruption, eq. 9 and its variants, the uniform-kernel surrogate, AR CE."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quokka_ray.diffusion import (
    ObjectiveConfig,
    draw_noise,
    get_schedule,
    per_sequence_loss,
)

V, MASK, B, L = 11, 10, 6, 20


class Recorder(nn.Module):
    """Random logits that depend on the input; remembers what it was given."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(V, V)
        self.inputs: list[torch.Tensor] = []
        self.times: list[torch.Tensor | None] = []

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        self.inputs.append(tokens.clone())
        self.times.append(t)
        logits = self.table(tokens) + self.table(tokens.roll(1, dims=1))
        return logits if t is None else logits * (1 + t[:, None, None])


def _setup(**change):
    cfg = ObjectiveConfig(**change)
    tokens = torch.randint(0, MASK, (B, L), generator=torch.Generator().manual_seed(1))
    noise = draw_noise(cfg, B, L, V, torch.Generator().manual_seed(2), 0.0)
    return cfg, tokens, noise


def _manual_ce(model: Recorder, tokens: torch.Tensor) -> torch.Tensor:
    noisy, t = model.inputs[-1], model.times[-1]
    logits = Recorder.forward(model, noisy, t)
    return F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")  # (b, L)


def test_masked_kernel_masks_where_u_is_below_one_minus_alpha() -> None:
    cfg, tokens, noise = _setup(schedule="poly2")
    model = Recorder()
    per_sequence_loss(model, tokens, noise, cfg, MASK)
    noisy = model.inputs[0]
    expected = noise.u < (1 - (1 - noise.t**2))[:, None]
    assert torch.equal(noisy == MASK, expected)
    assert torch.equal(noisy[~expected], tokens[~expected])
    assert model.times[0] is None  # the masked denoiser gets no time


@pytest.mark.parametrize("mask_id", [MASK, 0])
def test_uniform_kernel_never_writes_the_mask_token(mask_id: int) -> None:
    cfg, _, noise = _setup(kernel="uniform")
    tokens = torch.randint(1, V, (B, L)) if mask_id == 0 else torch.randint(0, MASK, (B, L))
    model = Recorder()
    out = per_sequence_loss(model, tokens, noise, cfg, mask_id)
    noisy = model.inputs[0]
    corrupted = noise.u < noise.t[:, None]
    assert not (noisy == mask_id).any()
    assert torch.equal(noisy[~corrupted], tokens[~corrupted])
    assert torch.equal(model.times[0], noise.t)  # the uniform denoiser is given t
    assert torch.allclose(out.metrics["corrupted_fraction"], corrupted.float().mean(1))


@pytest.mark.parametrize("schedule", ["linear", "poly2", "cosine"])
def test_elbo_is_eq9(schedule: str) -> None:
    cfg, tokens, noise = _setup(schedule=schedule)
    model = Recorder()
    out = per_sequence_loss(model, tokens, noise, cfg, MASK)
    ce, masked = _manual_ce(model, tokens), model.inputs[-1] == MASK
    weight = get_schedule(schedule).weight(noise.t)
    expected = weight * (ce * masked).sum(1) / L
    assert torch.allclose(out.per_sequence, expected, rtol=1e-5)


@pytest.mark.parametrize("kernel", ["masked", "uniform"])
def test_maskgit_is_elbo_with_unit_weight(kernel: str) -> None:
    cfg, tokens, noise = _setup(kernel=kernel, schedule="cosine")
    elbo = per_sequence_loss(Recorder(), tokens, noise, cfg, MASK)
    maskgit_cfg = ObjectiveConfig(kernel=kernel, schedule="cosine", loss="maskgit")
    maskgit = per_sequence_loss(Recorder(), tokens, noise, maskgit_cfg, MASK)
    weight = get_schedule("cosine").weight(noise.t)
    if kernel == "masked":
        assert torch.allclose(maskgit.per_sequence * weight, elbo.per_sequence, rtol=1e-5)
    else:
        assert torch.allclose(maskgit.metrics["loss_corrupted"] * weight,
                              elbo.metrics["loss_corrupted"], rtol=1e-5)
        assert torch.equal(maskgit.metrics["loss_clean"], elbo.metrics["loss_clean"])


def test_realized_masked_variant_divides_by_the_masked_count() -> None:
    cfg, tokens, noise = _setup(loss="elbo_realized_masked")
    model = Recorder()
    out = per_sequence_loss(model, tokens, noise, cfg, MASK)
    ce, masked = _manual_ce(model, tokens), model.inputs[-1] == MASK
    mean_masked_ce = (ce * masked).sum(1) / masked.sum(1).clamp(min=1)
    assert torch.allclose(out.per_sequence, mean_masked_ce, rtol=1e-5)  # linear: -alpha' = 1
    cfg2 = ObjectiveConfig(loss="elbo_realized_masked", schedule="poly2")
    out2 = per_sequence_loss(Recorder(), tokens, noise, cfg2, MASK)
    masked2 = noise.u < (noise.t**2)[:, None]
    ce2 = _manual_ce_for(tokens, masked2)
    expected = 2 * noise.t * (ce2 * masked2).sum(1) / masked2.sum(1).clamp(min=1)
    assert torch.allclose(out2.per_sequence, expected, rtol=1e-5)


def _manual_ce_for(tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    model = Recorder()
    logits = model(torch.where(masked, MASK, tokens))
    return F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")


def test_uniform_surrogate_adds_clean_ce_to_weighted_corrupted_ce() -> None:
    cfg, tokens, noise = _setup(kernel="uniform")
    model = Recorder()
    out = per_sequence_loss(model, tokens, noise, cfg, MASK)
    ce = _manual_ce(model, tokens)
    corrupted = noise.u < noise.t[:, None]
    clean = (ce * ~corrupted).sum(1) / (~corrupted).sum(1).clamp(min=1)
    weighted = (1 / noise.t) * (ce * corrupted).sum(1) / L
    assert torch.allclose(out.metrics["loss_clean"], clean, rtol=1e-5)
    assert torch.allclose(out.metrics["loss_corrupted"], weighted, rtol=1e-5)
    assert torch.allclose(out.per_sequence, clean + weighted, rtol=1e-5)


def test_ar_loss_is_next_token_ce_over_l_minus_1_positions() -> None:
    cfg, tokens, noise = _setup(kind="ar")
    model = Recorder()
    out = per_sequence_loss(model, tokens, noise, cfg, MASK)
    assert torch.equal(model.inputs[0], tokens)  # no corruption
    logits = Recorder.forward(model, tokens)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    assert torch.allclose(out.per_sequence, ce.mean(1), rtol=1e-6)


def test_loss_is_differentiable_and_metrics_are_detached() -> None:
    cfg, tokens, noise = _setup(kernel="uniform")
    model = Recorder()
    out = per_sequence_loss(model, tokens, noise, cfg, MASK)
    out.per_sequence.mean().backward()
    assert model.table.weight.grad is not None and model.table.weight.grad.abs().sum() > 0
    assert all(not m.requires_grad for m in out.metrics.values())
    assert all(m.shape == (B,) for m in out.metrics.values())
