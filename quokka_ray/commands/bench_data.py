"""`quokka bench data`: tokens/s of shard preparation (in-process and with 1, 2, ... Ray Data
workers, byte tokenizer and a BPE trained here) and of the loader (one worker's rows of each
global batch, read from the shards with its prefetch thread), on the offline stdlib corpus."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from quokka_ray.data import (
    BatchPrefetcher,
    DataConfig,
    PackedCorpus,
    prepare_shards,
    read_manifest,
)


def run_data_benchmark(*, max_corpus_bytes: int, seq_len: int, batch_sequences: int,
                       steps: int, workers: list[int]) -> list[dict]:
    from quokka_ray.data.train_tokenizer import train_bpe

    rows = []
    with tempfile.TemporaryDirectory(prefix="quokka-bench-data-") as scratch:
        bpe = Path(scratch) / "bpe.json"
        train_bpe(DataConfig(max_corpus_bytes=2_000_000), 8192, bpe)
        if any(w != 0 for w in workers):
            import ray

            if not ray.is_initialized():
                ray.init(address="local", log_to_driver=False)
        for tokenizer in ("byte", str(bpe)):
            for count in workers:
                cfg = DataConfig(seq_len=seq_len, max_corpus_bytes=max_corpus_bytes,
                                 validation_sequences=8, shard_tokens=2_000_000,
                                 tokenizer=tokenizer, cache_dir=f"{scratch}/w{count}-{len(rows)}")
                start = time.perf_counter()
                prepare_shards(cfg, workers=count)
                seconds = time.perf_counter() - start
                manifest = read_manifest(cfg)
                tokens = manifest["documents"]["tokens"]
                row = {"what": "prepare", "tokenizer": "byte" if tokenizer == "byte" else "bpe-8192",
                       "workers": count, "tokens": tokens, "seconds": seconds,
                       "tokens_per_s": tokens / seconds, "shards": len(manifest["shards"])}
                rows.append(row)
                print(f"prepare  {row['tokenizer']:<9} workers={count} "
                      f"({'in-process' if count == 0 else 'Ray Data'}): {tokens:,} tokens, "
                      f"{len(manifest['shards'])} shards in {seconds:.1f} s: "
                      f"{row['tokens_per_s']:,.0f} tokens/s", flush=True)
        corpus = PackedCorpus(cfg)  # the last one prepared: BPE ids
        unique = corpus.train_sequences
        batches = BatchPrefetcher(corpus.train, seed=0, global_batch_sequences=batch_sequences,
                                  unique_sequences=unique, rows=(0, batch_sequences),
                                  first_step=0)
        start = time.perf_counter()
        for step in range(steps):
            batches.get(step)
        seconds = time.perf_counter() - start
        batches.close()
        tokens = steps * batch_sequences * seq_len
        row = {"what": "load", "tokens": tokens, "seconds": seconds,
               "tokens_per_s": tokens / seconds, "train_sequences": unique}
        rows.append(row)
        print(f"load     one worker, {batch_sequences} random sequences of {seq_len} per step "
              f"from {unique:,} ({len(corpus.manifest['shards'])} shards): {steps} steps in "
              f"{seconds:.2f} s: {row['tokens_per_s']:,.0f} tokens/s", flush=True)
    return rows
