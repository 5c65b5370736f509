"""Transformer backbone, model sizing and FLOPs accounting. Knows nothing of Ray or MLflow."""

from importlib import import_module

from .config import ModelConfig
from .flops import (
    flops_per_token,
    forward_flops_per_token,
    output_flops_per_token,
    six_n_flops_per_token,
)
from .params import embedding_params, non_embedding_params, total_params
from .sizing import shape_for_width, size_model

# The package imports only its configs and plain arithmetic with itself: a config unpickled
# by Ray Train's controller or Tune's driver must not import torch or pyarrow (seconds in
# every such process). Everything else is imported on first use.
_LAZY = {
    "Block": ".transformer",
    "Transformer": ".transformer",
}

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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
