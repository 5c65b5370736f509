"""Transformer backbone, model sizing and FLOPs accounting. Knows nothing of Ray or MLflow."""

from .config import ModelConfig
from .flops import (
    flops_per_token,
    forward_flops_per_token,
    output_flops_per_token,
    six_n_flops_per_token,
)
from .params import embedding_params, non_embedding_params, total_params
from .sizing import shape_for_width, size_model
from .transformer import Block, Transformer

__all__ = [
    "Block",
    "ModelConfig",
    "Transformer",
    "embedding_params",
    "flops_per_token",
    "forward_flops_per_token",
    "output_flops_per_token",
    "non_embedding_params",
    "shape_for_width",
    "six_n_flops_per_token",
    "size_model",
    "total_params",
]
