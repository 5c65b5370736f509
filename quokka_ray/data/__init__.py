"""Corpora, tokenizers, packed Parquet shards and the data order. Knows nothing of Ray or MLflow."""

from quokka_ray.data.config import DataConfig
from quokka_ray.data.order import batch_sequence_indices, rank_rows
from quokka_ray.data.shards import PackedData, load_packed, prepare_shards, read_manifest
from quokka_ray.data.tokenizers import ByteTokenizer, get_tokenizer

__all__ = [
    "ByteTokenizer",
    "DataConfig",
    "PackedData",
    "batch_sequence_indices",
    "get_tokenizer",
    "load_packed",
    "prepare_shards",
    "read_manifest",
    "rank_rows",
]
