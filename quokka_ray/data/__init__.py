"""Corpora, tokenizers, packed Parquet shards, the loader and the data order. Knows nothing of
MLflow; Ray only in `ray_prepare` (shard preparation with Ray Data), imported on demand."""

from importlib import import_module

from quokka_ray.data.config import DataConfig

# The package imports only its configs and plain arithmetic with itself: a config unpickled
# by Ray Train's controller or Tune's driver must not import torch or pyarrow (seconds in
# every such process). Everything else is imported on first use.
_LAZY = {
    "BatchPrefetcher": ".loader",
    "PackedCorpus": ".loader",
    "ShardReader": ".loader",
    "batch_sequence_indices": ".order",
    "rank_rows": ".order",
    "prepare_shards": ".shards",
    "read_manifest": ".shards",
    "shard_dir": ".shards",
    "with_root": ".shards",
    "ByteTokenizer": ".tokenizers",
    "get_tokenizer": ".tokenizers",
    "token_dtype": ".tokenizers",
}

__all__ = [
    "BatchPrefetcher",
    "ByteTokenizer",
    "DataConfig",
    "PackedCorpus",
    "ShardReader",
    "batch_sequence_indices",
    "get_tokenizer",
    "prepare_shards",
    "rank_rows",
    "read_manifest",
    "shard_dir",
    "token_dtype",
    "with_root",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
