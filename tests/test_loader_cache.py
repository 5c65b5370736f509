"""The reader's cache of decoded row groups and the prefetcher's order computed for many steps at
once change nothing a worker reads."""

from __future__ import annotations

import numpy as np

from quokka_ray.data import (
    BatchPrefetcher,
    DataConfig,
    PackedCorpus,
    loader,
    prepare_shards,
    rank_rows,
)
from quokka_ray.data.order import batch_sequence_indices


def _reader(data_cache):
    cfg = DataConfig(seq_len=32, max_corpus_bytes=100_000, validation_sequences=8,
                     shard_tokens=20_000, cache_dir=str(data_cache))
    prepare_shards(cfg)
    return PackedCorpus(cfg).train


def test_the_order_of_every_step_is_batch_sequence_indices(data_cache):
    reader = _reader(data_cache)
    batch, unique = 10, 150  # an epoch every 15 steps: blocks of order and epochs cross
    steps = 3 * loader.ORDER_STEPS + 5
    for world, rank in ((1, 0), (3, 1), (3, 2)):
        rows = rank_rows(batch, world, rank)
        prefetch = BatchPrefetcher(reader, seed=4, global_batch_sequences=batch,
                                   unique_sequences=unique, rows=rows, first_step=0)
        prefetch.close()
        for step in list(range(steps)) + [loader.ORDER_STEPS - 1, 2]:  # and back again
            expected = batch_sequence_indices(4, step, batch, unique)[rows[0]:rows[1]]
            assert np.array_equal(prefetch.indices(step), expected), (world, rank, step)


def test_a_reader_with_a_small_cache_reads_what_an_uncached_one_reads(data_cache, monkeypatch):
    reader = _reader(data_cache)
    shards = len(reader.files)
    assert shards >= 4
    largest = max(_reader(data_cache)._row_group(s, 0).nbytes for s in range(shards))
    monkeypatch.setattr(loader, "CACHED_GROUP_BYTES", largest)  # one or two groups at a time
    rng = np.random.default_rng(0)
    for _ in range(30):
        rows = rng.integers(0, len(reader), size=12)
        expected = np.concatenate([_uncached_row(reader, r) for r in rows])
        assert np.array_equal(reader.read(rows), expected)
        assert 0 < reader._decoded_bytes <= largest and len(reader._decoded) < shards
        assert sum(t.nbytes for t in reader._decoded.values()) == reader._decoded_bytes


def _uncached_row(reader: loader.ShardReader, row: int) -> np.ndarray:
    """(1, seq_len) int64: the row decoded from its file without the reader's caches."""
    import pyarrow.parquet as pq

    from quokka_ray.data.storage import join

    shard = int(np.searchsorted(reader.starts, row, side="right") - 1)
    table = pq.read_table(join(reader.root, reader.files[shard]), filesystem=reader.fs)
    tokens = table.column("tokens").combine_chunks().flatten().to_numpy()
    return tokens.reshape(-1, reader.seq_len)[row - reader.starts[shard]][None].astype(np.int64)
