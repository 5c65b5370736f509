"""The backbone: pre-norm transformer, bidirectional for DLMs and causal for AR baselines."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, rope_cos_sin
from .config import ModelConfig
from .layers import RMSNorm, SwiGLU, TimeEmbedding


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)). Owns all its parameters (FSDP2 unit)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Token embedding -> blocks -> RMSNorm -> output projection; logits (b, t, vocab_size).

    For FSDP2, shard each of `blocks` with fully_shard, then the root: embedding, final norm,
    output projection and time embedding belong to the root, and no parameter is shared between
    blocks. With meta-device init, call `init_weights()` after `to_empty()`.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.time_embed = TimeEmbedding(cfg.d_model) if cfg.time_embedding else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.output = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        )
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Normal(0, init_std) for every linear and embedding weight, ones for norms.

        The two projections that write into the residual stream (attention output and MLP down)
        get init_std / sqrt(2 n_layers), as in GPT-2: the stream's variance then stays about
        constant with depth instead of growing with the 2 n_layers residual additions.
        """
        std = self.cfg.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        residual_std = std / math.sqrt(2 * self.cfg.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.out.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)

    #: forward() takes `positions`: the output layer then runs on those positions only.
    selects_positions = True

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (b, seq, vocab); with `positions` (n,) long, indices into the flattened
        (b * seq) positions, the logits (n, vocab) of those positions only, in that order: a
        masked-diffusion loss needs only the masked ones, and the output layer is the largest
        matmul of a small model.
        tokens (b, seq) long; t (b,) float in [0, 1], given iff cfg.time_embedding."""
        b, seq = tokens.shape
        if seq > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {seq} tokens exceeds max_seq_len={self.cfg.max_seq_len}")
        if self.time_embed is not None and t is None:
            raise ValueError("this model has a time embedding (cfg.time_embedding): pass t")
        if self.time_embed is None and t is not None:
            raise ValueError("t was given but the model has no time embedding (cfg.time_embedding)")
        h = self.embed(tokens)  # (b, seq, d)
        if self.time_embed is not None:
            if t.shape != (b,):
                raise ValueError(f"t must have shape ({b},), got {tuple(t.shape)}")
            h = h + self.time_embed(t)[:, None, :].to(h.dtype)
        cos, sin = rope_cos_sin(seq, self.cfg.head_dim, self.cfg.rope_theta, tokens.device)
        for block in self.blocks:
            h = block(h, cos, sin)
        if positions is not None:
            # (n, d): the norm and the output layer act per position. A gather of given
            # indices: its size is known without reading anything back from the device.
            h = h.flatten(0, 1).index_select(0, positions)
        h = self.norm(h)
        if self.output is None:
            return F.linear(h, self.embed.weight)  # (b, seq, vocab) or (n, vocab)
        return self.output(h)  # (b, seq, vocab) or (n, vocab)
