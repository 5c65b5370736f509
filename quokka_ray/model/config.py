"""The transformer's shape and options, as one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import dataclass

ATTENTION_BACKENDS = ("sdpa", "flash_attn")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the backbone shared by DLM (bidirectional) and AR (causal) runs."""

    vocab_size: int
    """Tokens in the vocabulary, the mask token included (AR runs keep it so both share N)."""
    n_layers: int
    """Transformer blocks."""
    d_model: int
    """Width of the residual stream."""
    n_heads: int
    """Attention heads; head dim = d_model / n_heads, which must be even for RoPE."""
    ffn_hidden: int
    """Hidden width of the SwiGLU MLP (about 8 * d_model / 3 keeps a layer at about 12 d^2)."""
    max_seq_len: int
    """Longest sequence the model accepts, in tokens."""
    causal: bool = False
    """Causal attention mask (AR baseline); bidirectional otherwise (DLM)."""
    time_embedding: bool = False
    """Condition on the diffusion time t (uniform kernel); forward() then requires t."""
    tie_embeddings: bool = False
    """Use the token embedding's weight as the output projection."""
    init_std: float = 0.02
    """Std of the normal init of every linear and embedding weight (paper: 0.02)."""
    rope_theta: float = 10000.0
    """Base of the rotary position embedding's frequencies."""
    norm_eps: float = 1e-6
    """Epsilon of every RMSNorm."""
    attention_backend: str = "sdpa"
    """'sdpa' (torch.nn.functional.scaled_dot_product_attention) or 'flash_attn' (the
    flash-attn package, bf16/fp16 on CUDA only)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layers", "d_model", "n_heads", "ffn_hidden", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be divisible by "
                f"ModelConfig.n_heads ({self.n_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"ModelConfig.n_heads: head dim d_model/n_heads = {self.head_dim} must be even "
                "for RoPE (it rotates pairs of channels)"
            )
        for name in ("init_std", "rope_theta", "norm_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(
                f"ModelConfig.attention_backend must be one of {ATTENTION_BACKENDS}, "
                f"got {self.attention_backend!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads
