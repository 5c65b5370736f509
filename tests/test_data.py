"""Packed shards, the loader and the data order."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quokka_ray.cli import main
from quokka_ray.data import (
    ByteTokenizer,
    DataConfig,
    PackedCorpus,
    batch_sequence_indices,
    prepare_shards,
    rank_rows,
    read_manifest,
)
from quokka_ray.data.tokenizers import token_dtype


def test_shards_hold_the_manifests_tokens_as_uint16(data_cache):
    cfg = DataConfig(seq_len=32, max_corpus_bytes=50_000, validation_sequences=8,
                     shard_tokens=4_000, cache_dir=str(data_cache))
    folder = prepare_shards(cfg)
    assert prepare_shards(cfg) == folder  # prepared once
    manifest = read_manifest(cfg)
    assert len(manifest["shards"]) > 3 and manifest["token_dtype"] == "uint16"
    written = 0
    for shard in manifest["shards"]:
        table = pq.read_table(f"{folder}/{shard['file']}")
        assert table.schema.field("tokens").type == pa.list_(pa.uint16(), 32)
        assert table.num_rows == shard["sequences"]
        written += table.num_rows * 32
    assert written == manifest["train_tokens"] == sum(s["tokens"] for s in manifest["shards"])
    data = PackedCorpus(cfg)
    assert data.train_sequences * 32 == manifest["train_tokens"]
    assert data.validation.shape == (8, 32)
    rows = data.train.read(np.arange(data.train_sequences))
    assert rows.max() < 256  # bytes; the mask token (256) never appears in the data
    assert manifest["documents"]["tokens"] >= manifest["train_tokens"] + 8 * 32


def test_token_dtype_is_the_smallest_that_holds_the_vocabulary():
    assert token_dtype(256) == np.uint8
    assert token_dtype(257) == token_dtype(50_258) == np.uint16
    assert token_dtype(70_000) == np.uint32


def test_local_text_file_source(tmp_path, data_cache):
    source = tmp_path / "tiny.txt"
    source.write_text("".join(f"line {i} hello world\n" for i in range(600)))
    cfg = DataConfig(source=str(source), seq_len=16, validation_sequences=4,
                     cache_dir=str(data_cache))
    prepare_shards(cfg)
    data = PackedCorpus(cfg)
    assert "hello world" in ByteTokenizer().decode(data.train.read([0, 1, 2]).ravel().tolist())


def test_order_does_not_depend_on_workers_and_repeats_unique_data():
    batch = batch_sequence_indices(seed=3, step=5, global_batch_sequences=12, unique_sequences=40)
    rows = [batch[slice(*rank_rows(12, 3, r))] for r in range(3)]
    assert np.array_equal(np.concatenate(rows), batch)
    assert sum(rank_rows(13, 4, r)[1] - rank_rows(13, 4, r)[0] for r in range(4)) == 13
    # Ten steps of 12 over 40 unique sequences: three full epochs, each a permutation.
    seen = np.concatenate([batch_sequence_indices(3, s, 12, 40) for s in range(10)])
    for epoch in range(3):
        assert sorted(seen[epoch * 40:(epoch + 1) * 40]) == list(range(40))
    assert not np.array_equal(seen[:40], seen[40:80])


def test_bad_data_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"seq_len": 32, "sequence_length": 9}))
    (tmp_path / "small.json").write_text(json.dumps({"seq_len": 4}))
    cases = {
        ("prepare", str(tmp_path / "missing.jsonl")): "missing.jsonl",
        ("prepare", str(tmp_path / "bad.json")): "DataConfig.sequence_length",
        ("prepare", str(tmp_path / "small.json")): "DataConfig.seq_len",
        ("prepare", "stdlib", "--tokenizer", str(tmp_path / "none.json")): "DataConfig.tokenizer",
        ("prepare", "stdlib", "--validation-sequences", "0"): "DataConfig.validation_sequences",
        ("train-tokenizer", "stdlib", "--vocab-size", "10", "--out",
         str(tmp_path / "t.json")): "--vocab-size",
    }
    for argv, named in cases.items():
        storage = tmp_path / "runs"
        extra = ["--storage-path", str(storage), "--workers", "0"] if argv[0] == "prepare" else []
        assert main(["data", *argv, *extra]) == 2, argv
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and named in lines[0], (argv, lines)
        assert not storage.exists() and not (tmp_path / "t.json").exists()
