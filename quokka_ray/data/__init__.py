"""Corpora, tokenizers, packed Parquet shards, the loader and the data order. Knows nothing of
MLflow; Ray only in `ray_prepare` (shard preparation with Ray Data), imported on demand."""

from quokka_ray.data.config import DataConfig
from quokka_ray.data.loader import BatchPrefetcher, PackedCorpus, ShardReader
from quokka_ray.data.order import batch_sequence_indices, rank_rows
from quokka_ray.data.shards import prepare_shards, read_manifest, shard_dir, with_root
from quokka_ray.data.tokenizers import ByteTokenizer, get_tokenizer, token_dtype

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
