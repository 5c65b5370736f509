"""Packed token shards, prepared once: documents are tokenized, held out for validation by the
hash of their text, assigned to shards by that hash, packed end to end (with a separator) into
fixed-length sequences and written as Parquet, token ids in the smallest unsigned type.

Everything that decides the content is a function of the documents alone (their hashes, never
the order in which tasks finish), so preparing in one process or with any number of Ray Data
workers gives the same shards and the same content hashes. The on-disk order of the training
sequences (shard by shard, documents by hash inside a shard: a random sample of documents at
any length) is the fixed order from which a unique-token budget takes its first U tokens.

The folder is keyed by a digest of the settings that shape its content; `manifest.json` is
written last, so a folder without one is unfinished (and rewritten, identically)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from quokka_ray.data.config import DataConfig
from quokka_ray.data.sources import DocumentStream
from quokka_ray.data.storage import join, open_root, read_json, write_bytes
from quokka_ray.data.tokenizers import get_tokenizer, token_dtype

MANIFEST = "manifest.json"
# Part of the folder key: a change to what the shards or manifest hold gets new shards.
SHARD_FORMAT = 4
# Settings that do not change what the shards hold.
_NOT_IN_KEY = ("cache_dir", "unique_tokens")
#: Documents per tokenizer call (and per Ray Data batch).
DOCUMENTS_PER_BATCH = 256
#: Bytes of token ids per Parquet row group: a worker reading one sequence decodes at most this.
ROW_GROUP_BYTES = 256 * 1024
#: Where shards go when neither the config nor the caller names a place.
DEFAULT_ROOT = ".quokka_cache"
#: The separator between packed documents.
SEPARATOR = "\n\n"

#: Told (step, done, total) as the preparation goes, for a progress bar. Steps: READING
#: (bytes of text read, of at most max_corpus_bytes), TOKENIZING (blocks of documents) and
#: PACKING (training shards written); total is None while unknown.
Progress = Callable[[str, int, "int | None"], None]
READING, TOKENIZING, PACKING = "data: reading", "data: tokenizing", "data: packing shards"
#: What each step counts.
PROGRESS_UNITS = {READING: "bytes", TOKENIZING: "blocks", PACKING: "shards"}


def with_root(cfg: DataConfig, storage_path: str | None) -> DataConfig:
    """`cfg` with its shard folder resolved: its own cache_dir, else `<storage_path>/data`."""
    root = cfg.cache_dir or (join(storage_path, "data") if storage_path else DEFAULT_ROOT)
    if "://" not in root:
        from pathlib import Path

        root = str(Path(root).expanduser().resolve())
    return replace(cfg, cache_dir=root)


def content_settings(cfg: DataConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_KEY}


def shard_dir(cfg: DataConfig) -> str:
    """The folder of `cfg`'s shards, from its settings alone (workers need no tokenizer file;
    `prepare_shards` refuses shards made with another tokenizer file at the same path)."""
    keyed = {"format": SHARD_FORMAT, **content_settings(cfg)}
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    return join(cfg.cache_dir or DEFAULT_ROOT, f"packed-{key}")


def read_manifest(cfg: DataConfig) -> dict | None:
    """The manifest of `cfg`'s shards, or None if they have not been prepared."""
    fs, root = open_root(shard_dir(cfg))
    return read_json(fs, join(root, MANIFEST))


def prepare_shards(cfg: DataConfig, *, workers: int | None = 0,
                   progress: Progress | None = None) -> str:
    """Write the shards for `cfg` unless they exist; return their folder. `workers=0` prepares
    in this process; otherwise with Ray Data (`workers` parallel tokenizer tasks, or as many as
    the cluster holds when None) on the Ray cluster this process is connected to. `progress`
    is told of each step (see Progress)."""
    folder = shard_dir(cfg)
    fs, root = open_root(folder)
    tokenizer_text = (_read_local_bytes(cfg.tokenizer).decode("utf-8")
                      if cfg.tokenizer.endswith(".json") and cfg.tokenizer != "byte" else None)
    manifest = read_json(fs, join(root, MANIFEST))
    if manifest is not None:
        _check_tokenizer_file(manifest, tokenizer_text, folder)
        return folder
    get_tokenizer(cfg.tokenizer)  # fails here, in one line, when its package is missing
    stream = DocumentStream(cfg)  # opens the source: a missing one fails before any write
    existed = fs.get_file_info(root).type != pafs.FileType.NotFound
    fs.create_dir(root, recursive=True)
    try:
        if workers == 0:
            keys, counts, tokens = _tokenize_local(stream, cfg, progress)
            results, validation, documents = _pack_local(keys, counts, tokens, cfg, folder,
                                                         progress)
        else:
            from quokka_ray.data.ray_prepare import prepare_with_ray

            results, validation, documents = prepare_with_ray(stream, cfg, folder, workers,
                                                              tokenizer_text, progress)
    except BaseException:
        if not existed:  # leave nothing behind a failed preparation
            fs.delete_dir(root)
        raise
    manifest = _manifest(cfg, stream.description(), results, validation, documents)
    if tokenizer_text is not None:  # the tokenizer travels with its shards
        data = tokenizer_text.encode("utf-8")
        write_bytes(fs, join(root, "tokenizer.json"), data)
        manifest["tokenizer"].update(file="tokenizer.json", sha256=hashlib.sha256(data).hexdigest())
    write_bytes(fs, join(root, MANIFEST), json.dumps(manifest, indent=1).encode())
    return folder


# --- the steps, shared by the in-process and the Ray Data preparation ---------------------------

def document_keys(texts: list[str]) -> np.ndarray:
    """64-bit keys from the SHA-256 of each text: identical texts share a key."""
    return np.array([int.from_bytes(hashlib.sha256(t.encode("utf-8")).digest()[:8], "little")
                     for t in texts], dtype=np.uint64)


@functools.lru_cache(maxsize=4)
def tokenizer_for_batches(name: str, json_text: str | None = None) -> TokenizeBatch:
    """One `TokenizeBatch` per tokenizer and process (Ray Data tasks reuse their workers)."""
    return TokenizeBatch(name, json_text)


class TokenizeBatch:
    """Documents -> (key, token count, token ids with the separator appended, as bytes)."""

    def __init__(self, tokenizer_name: str, json_text: str | None = None):
        self.tokenizer = get_tokenizer(tokenizer_name, json_text)
        self.dtype = token_dtype(self.tokenizer.vocab_size)
        self.separator = np.asarray(self.tokenizer.encode(SEPARATOR), dtype=self.dtype)

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        ids = [np.concatenate([np.asarray(a, dtype=self.dtype), self.separator])
               for a in self.tokenizer.encode_batch(texts)]
        return {"key": document_keys(texts),
                "n_tokens": np.array([len(a) for a in ids], dtype=np.int64),
                "tokens": np.array([a.tobytes() for a in ids], dtype=object)}


def split_documents(keys: np.ndarray, counts: np.ndarray, cfg: DataConfig
                    ) -> tuple[np.ndarray, int]:
    """(held-out keys, number of training shards). Documents are taken in key order (a hash:
    a random sample, the same on every run) into validation until they fill
    `validation_sequences`, skipping any that would overshoot what is still needed by more than
    a sequence, so that a large document does not take a large share of a small corpus.
    Copies of a text share its key, so they are held out together."""
    order = np.argsort(keys, kind="stable")
    need = cfg.validation_sequences * cfg.seq_len
    taken = np.zeros(len(keys), dtype=bool)
    for strict in (True, False):  # the second pass only when small documents do not suffice
        for i in order:
            if need <= 0:
                break
            if taken[i] or (strict and counts[i] > need + cfg.seq_len):
                continue
            taken[i] = True
            need -= int(counts[i])
    held_keys = np.unique(keys[taken])
    train = ~np.isin(keys, held_keys)
    if need > 0 or not train.any():
        raise ValueError(
            f"data source {cfg.source}: {int(counts.sum()):,} tokens in {len(keys)} documents do "
            f"not fill validation_sequences={cfg.validation_sequences} of {cfg.seq_len} and leave "
            "any for training; raise max_corpus_bytes")
    return held_keys, max(1, int(counts[train].sum()) // cfg.shard_tokens)


def shard_of(keys: np.ndarray, n_shards: int) -> np.ndarray:
    """Training shard of each document: the key space cut into `n_shards` equal ranges."""
    return np.minimum((keys.astype(np.float64) / 2.0**64 * n_shards).astype(np.int64),
                      n_shards - 1)


def pack(keys: np.ndarray, tokens: list[bytes], dtype: np.dtype, seq_len: int) -> np.ndarray:
    """Documents in key order, end to end, cut into (sequences, seq_len); the tail is dropped."""
    order = np.argsort(keys, kind="stable")
    # Identical keys are identical texts, so the order among them does not change the content.
    flat = np.frombuffer(b"".join(tokens[i] for i in order), dtype=dtype)
    n = len(flat) // seq_len
    return flat[: n * seq_len].reshape(n, seq_len)


def write_shard(folder: str, name: str, sequences: np.ndarray) -> dict:
    """One Parquet file of fixed-size lists of token ids; its entry in the manifest."""
    fs, root = open_root(folder)
    flat = pa.array(sequences.reshape(-1))
    seq_len = sequences.shape[1]
    table = pa.table({"tokens": pa.FixedSizeListArray.from_arrays(flat, seq_len)})
    rows_per_group = max(1, ROW_GROUP_BYTES // (seq_len * sequences.dtype.itemsize))
    with fs.open_output_stream(join(root, name)) as sink:
        pq.write_table(table, sink, row_group_size=rows_per_group, compression="none",
                       use_dictionary=False)
    return {"file": name, "sequences": int(len(sequences)), "tokens": int(sequences.size),
            "rows_per_group": int(rows_per_group),
            "sha256": hashlib.sha256(np.ascontiguousarray(sequences).tobytes()).hexdigest()}


def _tokenize_local(stream: DocumentStream, cfg: DataConfig, progress: Progress | None):
    tokenize = tokenizer_for_batches(cfg.tokenizer)
    keys, counts, tokens, batch = [], [], [], []

    def flush() -> None:
        out = tokenize({"text": batch})
        keys.append(out["key"])
        counts.append(out["n_tokens"])
        tokens.extend(out["tokens"])
        batch.clear()
        if progress is not None:  # read and tokenized in one pass
            progress(READING, stream.bytes, cfg.max_corpus_bytes)

    for text in stream:
        batch.append(text)
        if len(batch) == DOCUMENTS_PER_BATCH:
            flush()
    if batch:
        flush()
    if progress is not None:  # the source may hold less than max_corpus_bytes
        progress(READING, stream.bytes, stream.bytes)
    return np.concatenate(keys), np.concatenate(counts), tokens


def _pack_local(keys, counts, tokens, cfg: DataConfig, folder: str,
                progress: Progress | None = None):
    dtype = token_dtype(get_tokenizer(cfg.tokenizer).vocab_size)
    held_keys, n_shards = split_documents(keys, counts, cfg)
    held = np.isin(keys, held_keys)
    validation = write_validation(folder, keys[held], [t for t, h in zip(tokens, held, strict=True)
                                                       if h], dtype, cfg)
    train = np.flatnonzero(~held)
    shards = shard_of(keys[train], n_shards)
    results = []
    for shard in range(n_shards):
        members = train[shards == shard]
        sequences = pack(keys[members], [tokens[i] for i in members], dtype, cfg.seq_len)
        if len(sequences):
            results.append({**write_shard(folder, f"train-{shard:05d}.parquet", sequences),
                            "documents": int(len(members))})
        if progress is not None:
            progress(PACKING, shard + 1, n_shards)
    documents = {"train": int(len(train)), "validation": int(held.sum()),
                 "tokens": int(counts.sum())}
    return results, validation, documents


def write_validation(folder: str, keys: np.ndarray, tokens: list[bytes], dtype: np.dtype,
                     cfg: DataConfig) -> dict:
    sequences = pack(keys, tokens, dtype, cfg.seq_len)[: cfg.validation_sequences]
    return {**write_shard(folder, "validation.parquet", sequences), "documents": int(len(keys))}


def _manifest(cfg: DataConfig, source: dict, shards: list[dict], validation: dict,
              documents: dict) -> dict:
    tokenizer = get_tokenizer(cfg.tokenizer)
    shards = sorted(shards, key=lambda s: s["file"])
    train_sequences = sum(s["sequences"] for s in shards)
    return {
        "format": SHARD_FORMAT,
        "data_config": content_settings(cfg),
        "source": source,
        "tokenizer": {"name": cfg.tokenizer, "vocab_size": tokenizer.vocab_size},
        "vocab_size": tokenizer.vocab_size,
        "mask_token_id": tokenizer.mask_token_id,
        "bytes_per_token": tokenizer.bytes_per_token,
        "token_dtype": token_dtype(tokenizer.vocab_size).name,
        "seq_len": cfg.seq_len,
        "documents": documents,
        "train_sequences": int(train_sequences),
        "train_tokens": int(train_sequences * cfg.seq_len),
        "validation_sequences": int(validation["sequences"]),
        "validation_tokens": int(validation["tokens"]),
        "shards": shards,
        "validation": validation,
    }


def _check_tokenizer_file(manifest: dict, tokenizer_text: str | None, folder: str) -> None:
    recorded = manifest["tokenizer"].get("sha256")
    if tokenizer_text is None or recorded is None:
        return
    if hashlib.sha256(tokenizer_text.encode("utf-8")).hexdigest() != recorded:
        raise ValueError(
            f"DataConfig.tokenizer: {manifest['tokenizer']['name']!r} differs from the tokenizer "
            f"the shards in {folder} were made with: give the new file another path, or remove "
            "that folder")


def _read_local_bytes(path: str) -> bytes:
    from pathlib import Path

    return Path(path).expanduser().read_bytes()
