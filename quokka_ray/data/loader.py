"""Reading prepared shards: each worker reads only its rows of each global batch.

A global row index maps to (shard, row) through the shards' sequence counts in the manifest;
a row is read by decoding only its Parquet row group (at most `ROW_GROUP_BYTES`), so what a
worker holds is a bounded cache of decoded row groups and of open files, whatever the corpus
size. A background thread reads the next steps' rows while the current step trains."""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict

import numpy as np
import pyarrow.parquet as pq

from quokka_ray.data.config import DataConfig
from quokka_ray.data.order import batch_sequence_indices
from quokka_ray.data.shards import MANIFEST, shard_dir
from quokka_ray.data.storage import join, open_root, read_json

#: Open shard files kept per reader.
OPEN_FILES = 8
#: Decoded row groups kept per reader, in bytes of token ids as stored. A step reads its rows
#: from as many row groups, each decoded whole (about 1 ms per 256 KB on one core): for a
#: small model that is most of a step's CPU time. A corpus up to this size (the quickstart's
#: 23 MB) is decoded once; a larger one mostly once per row read, as without the cache.
CACHED_GROUP_BYTES = 32 * 2**20
#: Steps whose global-batch order is computed at once: each computation draws a permutation
#: of the whole epoch (milliseconds for a corpus of 10^5 sequences).
ORDER_STEPS = 64


class ShardReader:
    """Random access by global row index to the training sequences of a prepared corpus."""

    def __init__(self, folder: str, manifest: dict):
        self.fs, self.root = open_root(folder)
        self.seq_len = int(manifest["seq_len"])
        shards = manifest["shards"]
        self.files = [s["file"] for s in shards]
        self.rows_per_group = np.array([s["rows_per_group"] for s in shards], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum([s["sequences"] for s in shards])])
        self._open: OrderedDict[int, pq.ParquetFile] = OrderedDict()
        self._decoded: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._decoded_bytes = 0

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), seq_len) int64 token ids of the given global rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.seq_len), dtype=np.int64)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        offset = rows - self.starts[shard]
        group = offset // self.rows_per_group[shard]
        for s, g in sorted(set(zip(shard.tolist(), group.tolist(), strict=True))):
            chosen = np.flatnonzero((shard == s) & (group == g))
            tokens = self._row_group(s, g)
            out[chosen] = tokens[offset[chosen] - g * self.rows_per_group[s]]
        return out

    def _row_group(self, shard: int, group: int) -> np.ndarray:
        """(rows, seq_len) token ids of one row group, in their stored dtype."""
        key = (shard, group)
        if key in self._decoded:
            self._decoded.move_to_end(key)
            return self._decoded[key]
        column = self._file(shard).read_row_group(group, columns=["tokens"]).column(0)
        tokens = column.combine_chunks().flatten().to_numpy().reshape(-1, self.seq_len)
        self._decoded[key] = tokens
        self._decoded_bytes += tokens.nbytes
        while self._decoded_bytes > CACHED_GROUP_BYTES and len(self._decoded) > 1:
            self._decoded_bytes -= self._decoded.popitem(last=False)[1].nbytes
        return tokens

    def _file(self, shard: int) -> pq.ParquetFile:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        handle = pq.ParquetFile(self.fs.open_input_file(join(self.root, self.files[shard])))
        self._open[shard] = handle
        if len(self._open) > OPEN_FILES:
            self._open.popitem(last=False)[1].close()
        return handle


class PackedCorpus:
    """A prepared corpus as a worker sees it: the manifest, the training rows (read on demand)
    and the validation sequences (small, read whole)."""

    def __init__(self, cfg: DataConfig):
        folder = shard_dir(cfg)
        fs, root = open_root(folder)
        manifest = read_json(fs, join(root, MANIFEST))
        if manifest is None:
            raise ValueError(f"data shards for {cfg.source!r} are not prepared in {folder}: "
                             "`quokka run` prepares them, or `quokka data prepare`")
        self.folder, self.manifest = folder, manifest
        self.train = ShardReader(folder, manifest)
        table = pq.read_table(join(root, manifest["validation"]["file"]), filesystem=fs)
        self.validation = (table.column("tokens").combine_chunks().flatten().to_numpy()
                           .astype(np.int64).reshape(-1, cfg.seq_len))

    @property
    def train_sequences(self) -> int:
        return len(self.train)


class BatchPrefetcher:
    """This worker's rows [start, stop) of the global batch of each step from `first_step` on,
    read `depth` steps ahead by a background thread. `get(step)` must be called for each step
    in order."""

    def __init__(self, reader: ShardReader, *, seed: int, global_batch_sequences: int,
                 unique_sequences: int, rows: tuple[int, int], first_step: int, depth: int = 2):
        self.reader, self.seed = reader, seed
        self.global_batch, self.unique, self.rows = global_batch_sequences, unique_sequences, rows
        self.next_step = first_step
        self._order: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first_step,), daemon=True,
                                        name="quokka-prefetch")
        self._thread.start()

    def indices(self, step: int) -> np.ndarray:
        """This worker's rows of the global batch at `step` (`batch_sequence_indices`)."""
        # The global batches of ORDER_STEPS consecutive steps, from block * ORDER_STEPS on, are
        # the global batch of ORDER_STEPS times the size at step `block`: the order is one
        # sequence of positions, a step's batch the next global_batch of them.
        block, offset = divmod(step, ORDER_STEPS)
        cached_block, order = self._order  # one read: the main thread may call this too
        if cached_block != block:
            order = batch_sequence_indices(self.seed, block, ORDER_STEPS * self.global_batch,
                                           self.unique)
            self._order = (block, order)
        start, stop = self.rows
        first = offset * self.global_batch
        return order[first + start:first + stop]

    def _run(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                item = (step, self.reader.read(self.indices(step)))
            except BaseException as err:  # noqa: BLE001 - handed to the training thread
                item = (step, err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item[1], BaseException):
                return
            step += 1

    def get(self, step: int) -> np.ndarray:
        if step != self.next_step:
            raise ValueError(f"prefetcher asked for step {step}, expected {self.next_step}")
        got, tokens = self._queue.get()
        if isinstance(tokens, BaseException):
            raise tokens
        assert got == step
        self.next_step += 1
        return tokens

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
