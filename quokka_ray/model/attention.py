"""Multi-head attention with RoPE and QK-norm, on SDPA or the flash-attn package."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import RMSNorm


def rope_cos_sin(
    seq_len: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, (seq_len, head_dim / 2) each, in fp32.

    Computed on every forward instead of stored: no buffer to re-create after FSDP2's meta-device
    init or to keep out of checkpoints, and the cost is negligible next to the matmuls.
    """
    half = head_dim // 2
    inv_freq = theta ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
    angles = torch.arange(seq_len, device=device, dtype=torch.float32)[:, None] * inv_freq
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + head_dim/2) of x (b, t, h, head_dim) by position."""
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)  # (b, t, h, head_dim / 2) each
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, backend: str
) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v for q, k, v (b, t, h, head_dim) -> (b, t, h, head_dim)."""
    if backend == "flash_attn":
        try:
            from flash_attn import flash_attn_func  # optional: the `gpu` extra
        except ImportError as err:
            raise ImportError(
                "attention_backend='flash_attn' needs the flash-attn package "
                "(pip install 'quokka-ray[gpu]'); use attention_backend='sdpa' otherwise"
            ) from err
        if q.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(
                f"attention_backend='flash_attn' needs bf16/fp16 activations, got {q.dtype}: "
                "run the model under torch.autocast('cuda', dtype=torch.bfloat16)"
            )
        return flash_attn_func(q, k, v, causal=causal)  # takes (b, t, h, d) directly
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal
    )  # (b, h, t, head_dim)
    return out.transpose(1, 2)


class Attention(nn.Module):
    """Fused QKV projection, per-head RMSNorm on q and k (QK-norm), RoPE, output projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.causal, self.backend = cfg.causal, cfg.attention_backend
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        # QK-norm bounds the attention logits, which keeps bf16 training stable at scale.
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)  # (b, t, h, head_dim) each
        q = apply_rope(self.q_norm(q), cos, sin)
        k = apply_rope(self.k_norm(k), cos, sin)
        out = attend(q, k, v, self.causal, self.backend)  # (b, t, h, head_dim)
        return self.out(out.reshape(b, t, d))
