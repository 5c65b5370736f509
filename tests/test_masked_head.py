"""The masked-only output head: the output layer and the cross-entropy run on the masked
positions alone, and the loss and its gradients are those of the full head."""

from __future__ import annotations

import pytest
import torch

from quokka_ray.diffusion import ObjectiveConfig, draw_noise, per_sequence_loss
from quokka_ray.model import Transformer, size_model

MASK = 256


def _loss_and_grads(model, forward, cfg, tokens, noise):
    model.zero_grad(set_to_none=True)
    out = per_sequence_loss(forward, tokens, noise, cfg, MASK)
    out.per_sequence.mean().backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss", ["elbo", "maskgit", "elbo_realized_masked"])
@pytest.mark.parametrize("tied", [False, True])
def test_masked_only_head_matches_the_full_head(loss, tied, one_torch_thread):
    torch.manual_seed(0)
    cfg = ObjectiveConfig(kind="dlm", kernel="masked", loss=loss)
    model_cfg = size_model(30_000, 257, 32)
    model = Transformer(model_cfg.__class__(**{**model_cfg.__dict__, "tie_embeddings": tied}))
    tokens = torch.randint(0, 256, (6, 32), generator=torch.Generator().manual_seed(1))
    noise = draw_noise(cfg, 6, 32, 257, torch.Generator().manual_seed(2), progress=0.5)

    selected, selected_grads = _loss_and_grads(model, model, cfg, tokens, noise)
    full, full_grads = _loss_and_grads(model, lambda x: model(x), cfg, tokens, noise)

    assert selected.output_positions is not None and full.output_positions is None
    assert 0 < int(selected.output_positions) < tokens.numel()
    torch.testing.assert_close(selected.per_sequence, full.per_sequence, rtol=1e-6, atol=1e-6)
    assert selected_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(selected_grads[name], grad, rtol=1e-6, atol=1e-6, msg=name)


def test_uniform_kernel_and_ar_keep_the_full_head(one_torch_thread):
    tokens = torch.randint(0, 256, (2, 16))
    for cfg in (ObjectiveConfig(kind="dlm", kernel="uniform"), ObjectiveConfig(kind="ar")):
        model = Transformer(size_model(12_000, 257, 16, causal=cfg.kind == "ar",
                                       time_embedding=cfg.needs_time_embedding))
        noise = draw_noise(cfg, 2, 16, 257, torch.Generator().manual_seed(0), progress=0.5)
        out = per_sequence_loss(model, tokens, noise, cfg, MASK)
        assert out.output_positions is None and out.max_abs_logit is not None
