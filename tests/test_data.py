"""Packed shards and the data order."""

from __future__ import annotations

import numpy as np

from quokka_ray.data import (
    ByteTokenizer,
    DataConfig,
    batch_sequence_indices,
    load_packed,
    prepare_shards,
    rank_rows,
)


def test_shards_round_trip_the_corpus(data_cache):
    cfg = DataConfig(seq_len=32, max_corpus_bytes=50_000, validation_sequences=8,
                     cache_dir=str(data_cache))
    folder = prepare_shards(cfg)
    assert prepare_shards(cfg) == folder  # cached
    data = load_packed(cfg)
    assert data.train.shape[1] == 32 and data.validation.shape == (8, 32)
    assert data.manifest["source"]["corpus"] == "python-stdlib"
    assert data.manifest["source"]["python_version"]
    text = ByteTokenizer().decode(data.train[:4].reshape(-1).tolist())
    assert "def " in text or "import" in text or '"""' in text
    assert data.train.max() < 256  # bytes only, no mask token in the data


def test_local_text_file_source(tmp_path, data_cache):
    source = tmp_path / "tiny.txt"
    source.write_text("hello world\n" * 500)
    cfg = DataConfig(source=str(source), seq_len=16, validation_sequences=4,
                     cache_dir=str(data_cache))
    data = load_packed(cfg)
    assert ByteTokenizer().decode(data.train[0].tolist()).startswith("hello world")


def test_order_does_not_depend_on_workers_and_repeats_unique_data():
    batch = batch_sequence_indices(seed=3, step=5, global_batch_sequences=12, unique_sequences=40)
    rows = [batch[slice(*rank_rows(12, 3, r))] for r in range(3)]
    assert np.array_equal(np.concatenate(rows), batch)
    assert sorted(sum((rank_rows(13, 4, r)[1] - rank_rows(13, 4, r)[0]
                       for r in range(4)), 0) for _ in [0]) == [13]
    # Ten steps of 12 over 40 unique sequences: three full epochs, each a permutation.
    seen = np.concatenate([batch_sequence_indices(3, s, 12, 40) for s in range(10)])
    for epoch in range(3):
        assert sorted(seen[epoch * 40:(epoch + 1) * 40]) == list(range(40))
    assert not np.array_equal(seen[:40], seen[40:80])
