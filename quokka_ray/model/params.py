"""Parameter counts from a ModelConfig alone (no module is built), in the units of the laws.

N, the x-axis of every scaling law, is the *non-embedding* count: everything except the token
embedding and the output projection, tied or not. tests/test_model_params.py checks these
formulas against the parameters of the built Transformer.
"""

from __future__ import annotations

from .config import ModelConfig


def layer_params(cfg: ModelConfig) -> int:
    """Parameters of one block: about 12 d^2 when ffn_hidden is about 8d/3."""
    d = cfg.d_model
    attention = 4 * d * d  # q, k, v and output projections, no biases
    qk_norm = 2 * cfg.head_dim  # one RMSNorm weight over the head dim for q and one for k
    mlp = 3 * d * cfg.ffn_hidden  # SwiGLU: gate, up and down projections
    norms = 2 * d  # pre-attention and pre-MLP RMSNorm
    return attention + qk_norm + mlp + norms


def time_embedding_params(cfg: ModelConfig) -> int:
    """Sinusoidal features of width d -> Linear(d, d) -> SiLU -> Linear(d, d), no biases."""
    return 2 * cfg.d_model * cfg.d_model if cfg.time_embedding else 0


def non_embedding_params(cfg: ModelConfig) -> int:
    """N: blocks, final norm and time embedding MLP; not the token embedding or output layer."""
    return cfg.n_layers * layer_params(cfg) + cfg.d_model + time_embedding_params(cfg)


def embedding_params(cfg: ModelConfig) -> int:
    """Token embedding plus output projection (counted once when tied)."""
    table = cfg.vocab_size * cfg.d_model
    return table if cfg.tie_embeddings else 2 * table


def total_params(cfg: ModelConfig) -> int:
    """Every parameter of the Transformer (what Chinchilla's N counts)."""
    return non_embedding_params(cfg) + embedding_params(cfg)
