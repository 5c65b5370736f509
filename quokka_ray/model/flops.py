"""Training FLOPs per token, counted from the shapes (nanoGPT's estimate_mfu, made exact).

Conventions, so that MFU and the laws' C = 6 N D can be put side by side:

- A matmul of (m, k) by (k, n) costs 2 m k n FLOPs (one multiply and one add per MAC).
- Only matmuls are counted: norms, RoPE, softmax, SiLU and the loss are a few percent at toy
  size and far less at scale. The embedding lookup is a gather and costs 0.
- Attention scores (Q K^T) and the weighted sum (A V) are counted over the full seq_len for
  every query, *also for causal models*: a causal kernel skips about half of that work, but
  counting it in full keeps an AR and a DLM of the same shape at the same FLOPs (PaLM's MFU
  convention does the same), so AR MFU is slightly overstated at long sequence lengths.
- The output projection (d_model x vocab_size) is counted; the time embedding MLP runs once per
  sequence, so it adds 4 d^2 / seq_len per token.
- Training = forward + backward = 3 x forward (the backward pass computes gradients with
  respect to both inputs and weights, two matmuls per forward matmul).
"""

from __future__ import annotations

from .config import ModelConfig
from .params import non_embedding_params


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward-pass matmul FLOPs per token for sequences of seq_len tokens."""
    d, f = cfg.d_model, cfg.ffn_hidden
    projections = 2 * (4 * d * d)  # q, k, v, output
    mlp = 2 * (3 * d * f)  # SwiGLU gate, up, down
    attention = 2 * 2 * seq_len * d  # Q K^T and A V over all seq_len keys, all heads together
    output = 2 * d * cfg.vocab_size
    time_mlp = 2 * (2 * d * d) / seq_len if cfg.time_embedding else 0.0
    return float(cfg.n_layers * (projections + mlp + attention) + output + time_mlp)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Exact training (forward + backward) FLOPs per token, attention and output included."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def six_n_flops_per_token(cfg: ModelConfig) -> float:
    """The laws' approximation 6 N (N non-embedding): what C = 6 N D assumes per token."""
    return 6.0 * non_embedding_params(cfg)


def output_flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs of the output projection for one position: what a masked-only head saves
    on each position it skips."""
    return 3.0 * 2 * cfg.d_model * cfg.vocab_size
