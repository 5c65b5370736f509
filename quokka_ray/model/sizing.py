"""The shape rule: from a target non-embedding parameter count to a ModelConfig.

One width d_model fixes the shape, up to one layer more or less:

- d_model runs over a grid whose step grows with the width (16 below 128, 32 below 512, 64 below
  2048, 128 above), so every width is a whole number of heads and tensor-core friendly.
- head dim is 16 below d_model 128, 32 below 512 and 64 from 512 on: tiny CPU models still get
  several heads, and large ones use the usual 64.
- n_layers = round(min(d_model / 32, sqrt(d_model) / 2)), at least 1: an aspect ratio
  d_model / n_layers of 32 up to d_model 256 (d 32..192 gives 1..6 layers), then growing as
  sqrt(d_model), i.e. d_model = 4 n_layers^2 (1024 -> 16 layers, aspect 64; 2048 -> 23;
  4096 -> 32, aspect 128, LLaMA-7B's shape).
- ffn_hidden = 8 d_model / 3 rounded to a multiple of 8 (of 64 from d_model 1024 on), so a layer
  holds about 12 d_model^2 parameters.
- n_layers may also be one less or one more than the rule's, which fills the gaps between
  consecutive widths (a width step alone changes N by 30-100% at toy scale).

size_model walks the grid and returns the candidate whose exact non-embedding count is closest to
the target in log ratio (ties: the rule's own depth first, then the narrower model). The result
is within 40% of the target at 1e4-1e5, 22% at 1e5-1e6, 11% at 1e6-1e7, 7% at 1e7-1e8 and 4%
from 1e8 to 1e10.
"""

from __future__ import annotations

import dataclasses
import math

from . import params
from .config import ModelConfig

MIN_D_MODEL = 16


def _width_step(d_model: int) -> int:
    if d_model < 128:
        return 16
    if d_model < 512:
        return 32
    if d_model < 2048:
        return 64
    return 128


def _head_dim(d_model: int) -> int:
    return 16 if d_model < 128 else 32 if d_model < 512 else 64


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))  # not round(): banker's rounding would make 2.5 -> 2


def shape_for_width(
    d_model: int,
    vocab_size: int,
    max_seq_len: int,
    causal: bool = False,
    time_embedding: bool = False,
) -> ModelConfig:
    """The rule's config for one width (d_model must be a multiple of its head dim)."""
    head_dim = _head_dim(d_model)
    if d_model % head_dim:
        raise ValueError(f"d_model {d_model} is not a multiple of its head dim {head_dim}")
    n_layers = max(1, _round_half_up(min(d_model / 32, math.sqrt(d_model) / 2)))
    multiple = 8 if d_model < 1024 else 64
    ffn_hidden = multiple * max(1, _round_half_up(8 * d_model / 3 / multiple))
    return ModelConfig(
        vocab_size=vocab_size,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=d_model // head_dim,
        ffn_hidden=ffn_hidden,
        max_seq_len=max_seq_len,
        causal=causal,
        time_embedding=time_embedding,
    )


def size_model(
    non_embedding_params: int,
    vocab_size: int,
    max_seq_len: int,
    causal: bool = False,
    time_embedding: bool = False,
) -> ModelConfig:
    """The shape on the width grid whose non-embedding count is closest to the target."""
    target = non_embedding_params
    if target < 1:
        raise ValueError(f"non_embedding_params must be >= 1, got {target}")
    best: ModelConfig | None = None
    best_distance = math.inf
    d_model = MIN_D_MODEL
    while True:
        rule = shape_for_width(d_model, vocab_size, max_seq_len, causal, time_embedding)
        for n_layers in (rule.n_layers, rule.n_layers - 1, rule.n_layers + 1):
            if n_layers < 1:
                continue
            cfg = dataclasses.replace(rule, n_layers=n_layers)
            distance = abs(math.log(params.non_embedding_params(cfg) / target))
            if distance < best_distance:
                best, best_distance = cfg, distance
        shallowest = dataclasses.replace(rule, n_layers=max(1, rule.n_layers - 1))
        # Every candidate of a wider width has at least this count, so none can be closer.
        if params.non_embedding_params(shallowest) >= target:
            break
        d_model += _width_step(d_model)
    assert best is not None
    return best

