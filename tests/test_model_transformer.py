"""The Transformer's behaviour: masks, time conditioning, init, RoPE, FSDP2 sharding."""

import importlib.util
import math
import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

from quokka_ray.model import ModelConfig, Transformer
from quokka_ray.model.attention import apply_rope, rope_cos_sin

BASE = dict(vocab_size=61, n_layers=2, d_model=32, n_heads=2, ffn_hidden=88, max_seq_len=16)


def _model(**change) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**{**BASE, **change}))


def test_logits_shape_and_dtype() -> None:
    model = _model()
    logits = model(torch.randint(0, 61, (3, 16)))
    assert logits.shape == (3, 16, 61) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("causal", [False, True])
def test_attention_mask(causal: bool) -> None:
    model = _model(causal=causal)
    tokens = torch.randint(0, 61, (1, 16))
    changed = tokens.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 61  # change only the last token
    early = (model(tokens)[0, :-1] - model(changed)[0, :-1]).abs().max().item()
    if causal:
        assert early == 0.0  # earlier positions cannot see the future
    else:
        assert early > 1e-6  # bidirectional: every position sees the last token


def test_time_embedding_is_required_iff_configured() -> None:
    tokens = torch.randint(0, 61, (2, 8))
    plain, timed = _model(), _model(time_embedding=True)
    with pytest.raises(ValueError, match="time embedding"):
        plain(tokens, torch.rand(2))
    with pytest.raises(ValueError, match="pass t"):
        timed(tokens)
    with pytest.raises(ValueError, match="shape"):
        timed(tokens, torch.rand(3))
    low, high = timed(tokens, torch.full((2,), 0.1)), timed(tokens, torch.full((2,), 0.9))
    assert (low - high).abs().max() > 1e-6  # t reaches the logits


def test_no_biases_and_init_std() -> None:
    model = _model(n_layers=4, d_model=256, n_heads=8, ffn_hidden=688, vocab_size=1000)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.bias is None for m in linears)
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 4)
    assert model.blocks[0].mlp.down.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert torch.equal(model.norm.weight, torch.ones(256))


def test_state_dict_holds_only_parameters() -> None:
    model = _model()
    assert set(model.state_dict()) == {name for name, _ in model.named_parameters()}


def test_tied_embeddings_use_the_embedding_as_output() -> None:
    model = _model(tie_embeddings=True)
    assert model.output is None
    tokens = torch.tensor([[10, 11, 12, 13]])  # no token 5, so the hidden states stay the same
    before = model(tokens)
    with torch.no_grad():
        model.embed.weight[5] += 1.0  # so only the output logit of token 5 may change
    after = model(tokens)
    assert (after[..., 5] - before[..., 5]).abs().min() > 1e-3
    others = [i for i in range(61) if i != 5]
    assert torch.allclose(after[..., others], before[..., others], atol=1e-6)


def test_too_long_sequence_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_seq_len"):
        _model()(torch.zeros(1, 17, dtype=torch.long))


def test_rope_scores_depend_only_on_relative_position() -> None:
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    cos, sin = rope_cos_sin(40, 16, 10000.0, torch.device("cpu"))

    def score(i: int, j: int) -> float:
        rq = apply_rope(q, cos[i : i + 1], sin[i : i + 1])
        rk = apply_rope(k, cos[j : j + 1], sin[j : j + 1])
        return (rq * rk).sum().item()

    assert score(3, 7) == pytest.approx(score(23, 27), abs=1e-5)
    assert score(3, 7) != pytest.approx(score(3, 17), abs=1e-3)


def test_bf16_autocast_on_cpu_is_close_to_fp32() -> None:
    model = _model()
    tokens = torch.randint(0, 61, (2, 16))
    reference = model(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(tokens)
    assert (low.float() - reference).abs().max() < 0.05


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn present")
def test_flash_attn_backend_without_the_package_says_what_to_install() -> None:
    model = _model(attention_backend="flash_attn")
    with pytest.raises(ImportError, match="flash-attn"):
        model(torch.zeros(1, 4, dtype=torch.long))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_fsdp2_per_block_then_root_matches_the_plain_model() -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        # A CPU mesh: without one, FSDP2 would move the shards to a GPU where there is one.
        mesh = init_device_mesh("cpu", (1,))
        reference, sharded = _model(time_embedding=True), _model(time_embedding=True)
        for block in sharded.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        tokens, t = torch.randint(0, 61, (2, 16)), torch.rand(2)
        expected, got = reference(tokens, t), sharded(tokens, t)
        assert torch.allclose(got, expected, atol=1e-6)
        got.square().mean().backward()
        expected.square().mean().backward()
        grad = sharded.blocks[1].mlp.down.weight.grad.full_tensor()
        assert torch.allclose(grad, reference.blocks[1].mlp.down.weight.grad, atol=1e-6)
    finally:
        dist.destroy_process_group()
