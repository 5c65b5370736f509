"""Which training sequences make up each step's global batch.

The order is a function of (seed, epoch) alone, never of a worker's rank, so the data a run
sees is the same on any number of workers. A run may be limited to the first `unique_sequences`
sequences, which it then repeats epoch after epoch (data-constrained studies)."""

from __future__ import annotations

import numpy as np


def batch_sequence_indices(
    seed: int, step: int, global_batch_sequences: int, unique_sequences: int
) -> np.ndarray:
    """Indices (into the training sequences) of the global batch at `step`."""
    positions = step * global_batch_sequences + np.arange(global_batch_sequences)
    epochs = positions // unique_sequences
    out = np.empty(global_batch_sequences, dtype=np.int64)
    for epoch in np.unique(epochs):
        permutation = np.random.default_rng([seed, int(epoch)]).permutation(unique_sequences)
        selected = epochs == epoch
        out[selected] = permutation[positions[selected] % unique_sequences]
    return out


def rank_rows(global_batch_sequences: int, world_size: int, rank: int) -> tuple[int, int]:
    """This rank's [start, stop) rows of the global batch; ranks differ by at most one row."""
    start = rank * global_batch_sequences // world_size
    stop = (rank + 1) * global_batch_sequences // world_size
    return start, stop
