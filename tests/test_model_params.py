"""Parameter counts, the shape rule and the FLOPs formula against the built module."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from quokka_ray.model import (
    ModelConfig,
    Transformer,
    flops_per_token,
    forward_flops_per_token,
    non_embedding_params,
    shape_for_width,
    six_n_flops_per_token,
    size_model,
    total_params,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CONFIGS = [
    ModelConfig(vocab_size=257, n_layers=2, d_model=64, n_heads=4, ffn_hidden=176, max_seq_len=128),
    ModelConfig(
        vocab_size=100, n_layers=3, d_model=48, n_heads=3, ffn_hidden=128, max_seq_len=32,
        time_embedding=True,
    ),
    ModelConfig(
        vocab_size=50, n_layers=1, d_model=32, n_heads=2, ffn_hidden=88, max_seq_len=16,
        tie_embeddings=True, causal=True,
    ),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["plain", "time_embedding", "tied_causal"])
def test_non_embedding_params_counts_the_built_module(cfg: ModelConfig) -> None:
    model = Transformer(cfg)
    embedding_names = {"embed.weight", "output.weight"}
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if n not in embedding_names)
    assert non_embedding_params(cfg) == non_embedding
    assert total_params(cfg) == sum(p.numel() for p in model.parameters())


def test_non_embedding_params_is_about_12_l_d2() -> None:
    cfg = shape_for_width(1024, vocab_size=50257, max_seq_len=2048)
    ratio = non_embedding_params(cfg) / (12 * cfg.n_layers * cfg.d_model**2)
    assert 0.99 < ratio < 1.02


def test_flops_per_token_matches_a_hand_count() -> None:
    cfg = CONFIGS[0]  # V=257, L=2, d=64, h=4, ffn=176
    seq_len = 128
    qkv = 2 * 64 * 192  # 24576
    out = 2 * 64 * 64  # 8192
    mlp = 2 * 64 * 352 + 2 * 176 * 64  # 45056 + 22528 = 67584
    attention = 2 * 128 * 64 + 2 * 128 * 64  # scores + weighted sum = 32768
    per_layer = qkv + out + mlp + attention  # 133120
    output = 2 * 64 * 257  # 32896
    forward = 2 * per_layer + output  # 299136
    assert forward == 299136
    assert flops_per_token(cfg, seq_len) == 3 * forward
    assert six_n_flops_per_token(cfg) == 6 * non_embedding_params(cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["plain", "time_embedding", "tied_causal"])
def test_forward_flops_match_torch_flop_counter(cfg: ModelConfig) -> None:
    # The math SDPA backend decomposes into matmuls that FlopCounterMode sees (the fused CPU
    # kernel is not counted). It also counts the causal mask's skipped half, as we document.
    model = Transformer(cfg)
    b, seq = 2, cfg.max_seq_len
    tokens = torch.randint(0, cfg.vocab_size, (b, seq))
    t = torch.rand(b) if cfg.time_embedding else None
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(tokens, t)
    assert counter.get_total_flops() == pytest.approx(b * seq * forward_flops_per_token(cfg, seq))


def test_training_flops_are_three_times_forward_per_torch() -> None:
    cfg = CONFIGS[0]
    model = Transformer(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 32))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        logits = model(tokens)
        F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    assert counter.get_total_flops() == pytest.approx(2 * 32 * flops_per_token(cfg, 32))


@pytest.mark.parametrize("target", [10_000, 50_000, 200_000, 1_000_000, 2_000_000])
def test_size_model_tiny_targets(target: int) -> None:
    cfg = size_model(target, vocab_size=257, max_seq_len=64)
    assert 16 <= cfg.d_model <= 192 and 1 <= cfg.n_layers <= 6
    assert abs(math.log(non_embedding_params(cfg) / target)) < math.log(1.45)


@pytest.mark.parametrize("target", [10**7, 10**8, 10**9, 10**10])
def test_size_model_paper_scale(target: int) -> None:
    cfg = size_model(target, vocab_size=50257, max_seq_len=2048)
    assert abs(non_embedding_params(cfg) / target - 1) < 0.08
    assert cfg.head_dim == (64 if cfg.d_model >= 512 else 32)
    assert 32 <= cfg.d_model / cfg.n_layers <= 160  # aspect ratio
    assert abs(cfg.ffn_hidden / cfg.d_model - 8 / 3) < 0.1


def test_size_model_picks_the_closest_width_on_the_grid() -> None:
    # Enumerate the candidates independently: every multiple of 16 that has a valid shape, at
    # the rule's depth and one layer either side.
    for target in (30_000, 400_000, 3 * 10**7):
        chosen = size_model(target, vocab_size=257, max_seq_len=64)
        best = math.inf
        for d in range(16, 2048, 16):
            try:
                rule = shape_for_width(d, vocab_size=257, max_seq_len=64)
            except ValueError:
                continue  # off the grid (not a multiple of this width's head dim)
            for n_layers in range(max(1, rule.n_layers - 1), rule.n_layers + 2):
                cfg = dataclasses.replace(rule, n_layers=n_layers)
                best = min(best, abs(math.log(non_embedding_params(cfg) / target)))
        assert abs(math.log(non_embedding_params(chosen) / target)) == pytest.approx(best)


def test_size_model_is_deterministic_and_monotone() -> None:
    targets = [10**4, 10**5, 10**6, 10**7, 10**8]
    sizes = [non_embedding_params(size_model(n, 257, 64)) for n in targets]
    assert sizes == sorted(sizes)
    assert size_model(123_456, 257, 64) == size_model(123_456, 257, 64)
    assert size_model(10**6, 257, 64, causal=True).causal
    assert size_model(10**6, 257, 64, time_embedding=True).time_embedding


def test_flops_exceed_6n_at_toy_size_and_approach_it_at_scale() -> None:
    toy = size_model(10**5, vocab_size=257, max_seq_len=64)
    big = size_model(10**10, vocab_size=50257, max_seq_len=2048)
    assert flops_per_token(toy, 64) > 1.2 * six_n_flops_per_token(toy)
    assert flops_per_token(big, 2048) / six_n_flops_per_token(big) < 1.15
