"""Reading prepared shards: each worker reads only its rows of each global batch.

A global row index maps to (shard, row) through the shards' sequence counts in the manifest;
a row is read by decoding only its Parquet row group (at most `ROW_GROUP_BYTES`), so what a
worker holds is a few row groups and a bounded cache of open files, whatever the corpus size.
A background thread reads the next steps' rows while the current step trains."""

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
        column = self._file(shard).read_row_group(group, columns=["tokens"]).column(0)
        flat = column.combine_chunks().flatten().to_numpy()
        return flat.reshape(-1, self.seq_len)

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
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first_step,), daemon=True,
                                        name="quokka-prefetch")
        self._thread.start()

    def indices(self, step: int) -> np.ndarray:
        start, stop = self.rows
        return batch_sequence_indices(self.seed, step, self.global_batch, self.unique)[start:stop]

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
