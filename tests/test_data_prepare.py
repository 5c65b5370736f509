"""Shard preparation is deterministic (again, in-process, with 1 or 2 Ray Data workers), a
unique-token budget repeats exactly its first U tokens, validation documents are never trained
on, and the loader gives each worker exactly its rows of the global batch, after a resume too."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quokka_ray.cli import main
from quokka_ray.data import (
    BatchPrefetcher,
    ByteTokenizer,
    DataConfig,
    PackedCorpus,
    prepare_shards,
    rank_rows,
    read_manifest,
)

PREPARE = ["data", "prepare", "stdlib", "--seq-len", "64", "--max-corpus-bytes", "300000",
           "--validation-sequences", "16", "--shard-tokens", "30000"]


def _hashes(manifest: dict) -> list:
    return [(s["file"], s["sequences"], s["sha256"]) for s in manifest["shards"]] + \
        [manifest["validation"]["sha256"]]


@pytest.mark.slow
def test_prepare_gives_identical_hashes_again_and_on_one_or_two_ray_workers(ray_session, tmp_path):
    manifests = {}
    for name, workers in [("local", "0"), ("again", "0"), ("ray1", "1"), ("ray2", "2")]:
        storage = tmp_path / name
        assert main([*PREPARE, "--storage-path", str(storage), "--workers", workers]) == 0
        (path,) = storage.glob("data/packed-*/manifest.json")
        manifests[name] = json.loads(path.read_text())
        total = sum(s["tokens"] for s in manifests[name]["shards"])
        assert total == manifests[name]["train_tokens"]
    assert len(manifests["local"]["shards"]) >= 4
    for name in ("again", "ray1", "ray2"):
        assert _hashes(manifests[name]) == _hashes(manifests["local"]), name
        assert manifests[name]["documents"] == manifests["local"]["documents"]
    # Preparing again where shards exist writes nothing new.
    assert main([*PREPARE, "--storage-path", str(tmp_path / "local"), "--workers", "0"]) == 0


def _tagged_corpus(tmp_path, documents: int = 400):
    """A JSONL corpus whose every document carries a unique tag, to trace it into sequences."""
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa"]
    path = tmp_path / "tagged.jsonl"
    with path.open("w") as out:
        for i in range(documents):
            body = " ".join(rng.choice(words, size=int(rng.integers(20, 60))))
            out.write(json.dumps({"text": f"<doc{i:04d}> {body}"}) + "\n")
    return path


def _tags(tokens: np.ndarray) -> set[str]:
    import re

    return set(re.findall(r"<doc\d{4}>", ByteTokenizer().decode(tokens.ravel().tolist())))


def test_unique_budget_repeats_its_sequences_and_validation_is_held_out(tmp_path):
    cfg = DataConfig(source=str(_tagged_corpus(tmp_path)), seq_len=32, validation_sequences=16,
                     max_corpus_bytes=10**7, shard_tokens=5_000, cache_dir=str(tmp_path / "c"))
    prepare_shards(cfg)
    data = PackedCorpus(cfg)
    unique, batch = 60, 12  # U = 60 sequences; D = 4U = 20 steps of 12
    assert data.train_sequences > unique
    reader_rows, orders = [], []
    batches = BatchPrefetcher(data.train, seed=7, global_batch_sequences=batch,
                              unique_sequences=unique, rows=(0, batch), first_step=0)
    for step in range(4 * unique // batch):
        reader_rows.append(batches.get(step))
        orders.append(batches.indices(step))
    batches.close()
    order = np.concatenate(orders)
    counts = np.bincount(order, minlength=data.train_sequences)
    assert (counts[:unique] == 4).all() and counts[unique:].sum() == 0  # the first U, 4 times
    epochs = order.reshape(4, unique)
    assert len({tuple(e) for e in epochs}) == 4  # reshuffled every epoch
    assert np.array_equal(np.concatenate(reader_rows), data.train.read(order))

    train_tags = _tags(data.train.read(np.arange(data.train_sequences)))
    validation_tags = _tags(data.validation)
    assert validation_tags and train_tags and not train_tags & validation_tags
    manifest = read_manifest(cfg)
    assert manifest["documents"]["validation"] >= len(validation_tags)


def test_two_workers_read_together_what_one_reads_after_a_resume_too(data_cache):
    cfg = DataConfig(seq_len=32, max_corpus_bytes=100_000, validation_sequences=8,
                     shard_tokens=20_000, cache_dir=str(data_cache))
    prepare_shards(cfg)
    reader = PackedCorpus(cfg).train
    batch, unique, steps = 10, 150, 40  # crosses epoch boundaries

    def read(world: int, rank: int, first: int) -> list[np.ndarray]:
        prefetch = BatchPrefetcher(reader, seed=3, global_batch_sequences=batch,
                                   unique_sequences=unique, rows=rank_rows(batch, world, rank),
                                   first_step=first)
        out = [prefetch.get(s) for s in range(first, steps)]
        prefetch.close()
        return out

    assert steps * batch > unique and len(reader) > unique
    one = read(1, 0, 0)
    two = [read(2, r, 0) for r in range(2)]
    for step in range(steps):
        assert np.array_equal(np.concatenate([two[0][step], two[1][step]]), one[step])
    resumed = [read(2, r, 25) for r in range(2)]  # a restart from a checkpoint at step 25
    for step in range(25, steps):
        assert np.array_equal(np.concatenate([r[step - 25] for r in resumed]), one[step])
