"""On a CUDA GPU: SDPA's backends agree with each other and with flash-attn, causal and not,
alone and through the Transformer; the objectives and samplers run on the GPU in bf16.

Skipped without a GPU. Runs as `pytest -m gpu tests/test_attention_gpu.py -rs -s` (the -s shows
the measured differences) or `python tests/test_attention_gpu.py`.
"""

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from quokka_ray.diffusion import ObjectiveConfig, draw_noise, per_sequence_loss, sample_dlm
from quokka_ray.model import ModelConfig, Transformer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

FAST_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
BF16_ATOL = 2e-2  # bf16 keeps 8 bits of mantissa: ~4e-3 relative per rounding


def _qkv(causal: bool) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator(device="cuda").manual_seed(int(causal))
    shape = (2, 8, 256, 64)  # (b, h, t, head_dim)
    return tuple(torch.randn(shape, device="cuda", generator=generator, dtype=torch.bfloat16)
                 for _ in range(3))


def _run(backend: SDPBackend, fn):
    try:
        with sdpa_kernel(backend):
            return fn()
    except RuntimeError as err:  # "No available kernel": this build or GPU lacks the backend
        pytest.skip(f"{backend} unavailable here: {str(err).splitlines()[0][:200]}")


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("name", list(FAST_BACKENDS))
def test_sdpa_backends_agree_with_math(name: str, causal: bool) -> None:
    q, k, v = _qkv(causal)
    reference = _run(SDPBackend.MATH, lambda: F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), is_causal=causal))
    out = _run(FAST_BACKENDS[name], lambda: F.scaled_dot_product_attention(
        q, k, v, is_causal=causal))
    diff = (out.float() - reference).abs().max().item()
    print(f"\nsdpa {name} vs fp32 math, causal={causal}: max abs diff {diff:.2e}")
    assert diff < BF16_ATOL


def _model(causal: bool, backend: str = "sdpa") -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=1000, n_layers=2, d_model=256, n_heads=4, ffn_hidden=688,
                      max_seq_len=256, causal=causal, attention_backend=backend)
    return Transformer(cfg).cuda()


def _logits(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        return model(tokens).float()


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("name", list(FAST_BACKENDS))
def test_transformer_logits_agree_across_backends(name: str, causal: bool) -> None:
    model = _model(causal)
    tokens = torch.randint(0, 1000, (2, 256), device="cuda")
    reference = _run(SDPBackend.MATH, lambda: _logits(model, tokens))
    out = _run(FAST_BACKENDS[name], lambda: _logits(model, tokens))
    diff = (out - reference).abs().max().item()
    scale = reference.abs().max().item()
    print(f"\ntransformer {name} vs math (bf16), causal={causal}: max abs diff {diff:.2e} "
          f"(logits up to {scale:.2f})")
    assert diff < BF16_ATOL * max(1.0, scale)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_flash_attn_package_agrees_with_sdpa(causal: bool) -> None:
    if importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed (pip install 'quokka-ray[gpu]')")
    tokens = torch.randint(0, 1000, (2, 256), device="cuda")
    reference = _logits(_model(causal), tokens)
    out = _logits(_model(causal, backend="flash_attn"), tokens)  # same seed: same weights
    diff = (out - reference).abs().max().item()
    print(f"\nflash_attn vs sdpa, causal={causal}: max abs diff {diff:.2e}")
    assert diff < BF16_ATOL * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("kind,kernel", [("dlm", "masked"), ("dlm", "uniform"), ("ar", "masked")])
def test_training_step_and_sampling_in_bf16(kind: str, kernel: str) -> None:
    cfg = ObjectiveConfig(kind=kind, kernel=kernel, timesteps="curriculum")
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=257, n_layers=2, d_model=128, n_heads=4,
                                    ffn_hidden=344, max_seq_len=128, causal=kind == "ar",
                                    time_embedding=cfg.needs_time_embedding)).cuda()
    tokens = torch.randint(0, 256, (8, 128), device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    noise = draw_noise(cfg, 8, 128, 257, generator, progress=0.3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = per_sequence_loss(model, tokens, noise, cfg, mask_token_id=256)
    assert out.per_sequence.dtype == torch.float32 and torch.isfinite(out.per_sequence).all()
    out.per_sequence.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if kind == "dlm" and kernel == "masked":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            samples = sample_dlm(model, 4, 128, 8, 256, "linear", generator)
        assert samples.is_cuda and not (samples == 256).any()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-rs", "-s"]))
