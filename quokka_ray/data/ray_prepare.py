"""Shard preparation on a Ray cluster with Ray Data: documents are tokenized by parallel tasks
(`map_batches`), then grouped by training shard and each shard packed and written by its own
task (`groupby(...).map_groups`). The content is decided by document hashes alone (see
`shards`), so it is the same as an in-process preparation, on any number of workers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quokka_ray.data.config import DataConfig
from quokka_ray.data.shards import (
    DOCUMENTS_PER_BATCH,
    PACKING,
    READING,
    TOKENIZING,
    Progress,
    pack,
    shard_of,
    split_documents,
    tokenizer_for_batches,
    write_shard,
    write_validation,
)
from quokka_ray.data.sources import DocumentStream
from quokka_ray.data.tokenizers import get_tokenizer, token_dtype

#: Bytes of text per block handed from the reading process to Ray Data, at least and at most:
#: about 64 blocks per corpus in between, so that every worker gets some.
BLOCK_BYTES = (64 * 1024, 64 * 2**20)


def prepare_with_ray(stream: DocumentStream, cfg: DataConfig, folder: str, workers: int | None,
                     tokenizer_text: str | None = None, progress: Progress | None = None
                     ) -> tuple[list[dict], dict, dict]:
    """`tokenizer_text`: a tokenizer file's text, sent to the tasks (other nodes lack the file).
    `progress`: told of each step (shards.Progress)."""
    def tell(step: str, done: int, total: int | None) -> None:
        if progress is not None:
            progress(step, done, total)

    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller's progress stands for them
    context.print_on_execution_start = False

    block_bytes = min(BLOCK_BYTES[1], max(BLOCK_BYTES[0], cfg.max_corpus_bytes // 64))
    blocks, batch, size = [], [], 0
    for text in stream:
        batch.append(text)
        size += len(text)
        if size >= block_bytes:
            blocks.append(pa.table({"text": batch}))
            batch, size = [], 0
            tell(READING, stream.bytes, cfg.max_corpus_bytes)
    if batch:
        blocks.append(pa.table({"text": batch}))
    tell(READING, stream.bytes, stream.bytes)  # the source may hold less than the most asked
    # Tasks finish in any order; nothing below depends on it (document keys decide everything).
    tell(TOKENIZING, 0, len(blocks))
    tokenized = ray.data.from_arrow(blocks).map_batches(
        _tokenize, fn_kwargs={"tokenizer_name": cfg.tokenizer, "json_text": tokenizer_text},
        batch_size=DOCUMENTS_PER_BATCH, batch_format="pyarrow", concurrency=workers,
    ).materialize()
    tell(TOKENIZING, len(blocks), len(blocks))

    sizes = [(b["key"], b["n_tokens"]) for b in tokenized.select_columns(["key", "n_tokens"])
             .iter_batches(batch_format="numpy", batch_size=None)]
    keys = np.concatenate([k for k, _ in sizes]).astype(np.uint64)
    counts = np.concatenate([c for _, c in sizes])
    held_keys, n_shards = split_documents(keys, counts, cfg)
    dtype = token_dtype(get_tokenizer(cfg.tokenizer).vocab_size)

    validation_keys, validation_tokens = [], []
    for b in tokenized.map_batches(_held_out, fn_kwargs={"held_keys": held_keys},
                                   batch_format="pyarrow").iter_batches(batch_format="numpy",
                                                                        batch_size=None):
        validation_keys.append(b["key"].astype(np.uint64))
        validation_tokens.extend(b["tokens"])
    validation = write_validation(folder, np.concatenate(validation_keys), validation_tokens,
                                  dtype, cfg)

    packed = (tokenized
              .map_batches(_with_shard, fn_kwargs={"held_keys": held_keys, "n_shards": n_shards},
                           batch_format="pyarrow")
              .groupby("shard")
              .map_groups(_pack_group, fn_kwargs={"folder": folder, "seq_len": cfg.seq_len,
                                                  "dtype": dtype.name},
                          batch_format="numpy", concurrency=workers))
    shards = []
    tell(PACKING, 0, n_shards)
    for row in packed.iter_rows():  # one row per shard, as its group is written
        shards.append(row)
        tell(PACKING, len(shards), n_shards)
    tell(PACKING, len(shards), len(shards))  # a shard no document fell into has no group
    results = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
               for row in shards if row["sequences"] > 0]
    held = np.isin(keys, held_keys)
    documents = {"train": int((~held).sum()), "validation": int(held.sum()),
                 "tokens": int(counts.sum())}
    return results, validation, documents


def _tokenize(table: pa.Table, tokenizer_name: str, json_text: str | None) -> pa.Table:
    out = tokenizer_for_batches(tokenizer_name, json_text)(
        {"text": table.column("text").to_pylist()})
    return pa.table({"key": pa.array(out["key"], type=pa.uint64()),
                     "n_tokens": pa.array(out["n_tokens"], type=pa.int64()),
                     "tokens": pa.array(list(out["tokens"]), type=pa.binary())})


def _held_out(table: pa.Table, held_keys: np.ndarray) -> pa.Table:
    return table.filter(pa.array(np.isin(table.column("key").to_numpy(), held_keys)))


def _with_shard(table: pa.Table, held_keys: np.ndarray, n_shards: int) -> pa.Table:
    train = table.filter(pa.array(~np.isin(table.column("key").to_numpy(), held_keys)))
    shard = shard_of(train.column("key").to_numpy(), n_shards)
    return train.append_column("shard", pa.array(shard, type=pa.int64()))


def _pack_group(batch: dict, folder: str, seq_len: int, dtype: str) -> dict:
    shard = int(batch["shard"][0])
    sequences = pack(batch["key"].astype(np.uint64), list(batch["tokens"]), np.dtype(dtype),
                     seq_len)
    if not len(sequences):  # too few tokens for one sequence: no file
        entry = {"file": "", "sequences": 0, "tokens": 0, "rows_per_group": 0, "sha256": ""}
    else:
        entry = write_shard(folder, f"train-{shard:05d}.parquet", sequences)
    return {k: [v] for k, v in {**entry, "documents": len(batch["key"])}.items()}
