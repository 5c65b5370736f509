"""Packed token shards: documents are tokenized, concatenated and cut into fixed-length
sequences, written once as Parquet (pyarrow) and read back through `datasets`.

Shards are keyed by a digest of the data config, so every trial and every worker that asks for
the same data finds the same files; writing goes through a temporary folder and a rename so
that concurrent writers never leave a half-written shard behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quokka_ray.data.config import DataConfig
from quokka_ray.data.sources import read_documents
from quokka_ray.data.tokenizers import get_tokenizer

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PackedData:
    train: np.ndarray  # (n_train, seq_len) int64 token ids
    validation: np.ndarray  # (n_val, seq_len) int64 token ids
    manifest: dict

    @property
    def train_tokens(self) -> int:
        return int(self.train.size)


# Part of the cache key: a change to what the shards or manifest hold gets new shards.
SHARD_FORMAT = 3
# Settings that do not change what the shards hold.
_NOT_IN_KEY = ("cache_dir", "unique_tokens")


def shard_dir(cfg: DataConfig) -> Path:
    keyed = {"format": SHARD_FORMAT,
             **{k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_KEY}}
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.cache_dir).expanduser() / f"packed-{key}"


def read_manifest(cfg: DataConfig) -> dict | None:
    """The manifest of `cfg`'s shards, or None if they have not been prepared."""
    path = shard_dir(cfg) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def prepare_shards(cfg: DataConfig) -> Path:
    """Write the shards for `cfg` unless they exist; return their folder."""
    target = shard_dir(cfg)
    if (target / MANIFEST).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = get_tokenizer(cfg.tokenizer)
    corpus = read_documents(cfg)
    separator = np.asarray(tokenizer.encode("\n\n"), dtype=np.int32)
    # Arrays per document, joined once: a Python list of ints would take ~30 bytes a token.
    pieces: list[np.ndarray] = []
    for document in corpus.documents:
        encode_array = getattr(tokenizer, "encode_array", None)
        pieces.append(encode_array(document) if encode_array
                      else np.asarray(tokenizer.encode(document), dtype=np.int32))
        pieces.append(separator)
    ids = np.concatenate(pieces)
    n_sequences = len(ids) // cfg.seq_len
    if n_sequences <= cfg.validation_sequences:
        raise ValueError(
            f"data source {cfg.source}: {len(ids)} tokens give {n_sequences} sequences of "
            f"{cfg.seq_len}, not more than validation_sequences={cfg.validation_sequences}; "
            "raise max_corpus_bytes"
        )
    tokens = ids[: n_sequences * cfg.seq_len].reshape(-1, cfg.seq_len)
    split = n_sequences - cfg.validation_sequences
    manifest = {
        "data_config": {k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_KEY},
        "source": corpus.description,
        "vocab_size": tokenizer.vocab_size,
        "mask_token_id": tokenizer.mask_token_id,
        "bytes_per_token": tokenizer.bytes_per_token,
        "train_sequences": int(split),
        "validation_sequences": int(cfg.validation_sequences),
        "train_tokens": int(split * cfg.seq_len),
    }
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        _write(staging / "train.parquet", tokens[:split])
        _write(staging / "validation.parquet", tokens[split:])
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / MANIFEST).exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write(path: Path, tokens: np.ndarray) -> None:
    flat = pa.array(tokens.reshape(-1), type=pa.int32())
    column = pa.FixedSizeListArray.from_arrays(flat, tokens.shape[1])
    pq.write_table(pa.table({"tokens": column}), path)


def load_packed(cfg: DataConfig) -> PackedData:
    """Prepare (if needed) and load the shards as arrays, through `datasets`."""
    import datasets

    datasets.disable_progress_bars()
    folder = prepare_shards(cfg)
    manifest = json.loads((folder / MANIFEST).read_text())
    arrays = {}
    for split in ("train", "validation"):
        dataset = datasets.Dataset.from_parquet(
            str(folder / f"{split}.parquet"), cache_dir=str(folder / "hf-cache")
        )
        table = dataset.with_format("arrow")[:]
        column = table.column("tokens").combine_chunks()
        arrays[split] = column.flatten().to_numpy().astype(np.int64).reshape(-1, cfg.seq_len)
    return PackedData(arrays["train"], arrays["validation"], manifest)
