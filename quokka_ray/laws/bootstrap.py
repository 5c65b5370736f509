"""Percentile intervals from bootstrap replicates, shared by every fitter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

#: Central coverage of the intervals every fitter reports.
CONFIDENCE = 0.95

#: Told (what, done, total) after each step of a long fit, for a progress bar: the fitters
#: take one from their caller and know nothing of how it is shown.
Progress = Callable[[str, int, int], None]


def steps(total: int, progress: Progress | None, what: str) -> Iterator[int]:
    """range(total), telling `progress` after each step."""
    for i in range(total):
        yield i
        if progress is not None:
            progress(what, i + 1, total)


def percentile_intervals(
    samples: Mapping[str, Sequence[float]], confidence: float = CONFIDENCE
) -> dict[str, tuple[float, float]]:
    """Name -> (lo, hi): the central `confidence` percentile interval of each sample.

    Non-finite replicates (a refit that diverged) are dropped rather than poisoning the interval;
    a name with no finite replicate is left out.
    """
    tail = 100.0 * (1.0 - confidence) / 2.0
    out: dict[str, tuple[float, float]] = {}
    for name, values in samples.items():
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if v.size:
            lo, hi = np.percentile(v, [tail, 100.0 - tail])
            out[name] = (float(lo), float(hi))
    return out


def percentile_interval(values: Sequence[float], confidence: float = CONFIDENCE
                        ) -> tuple[float, float] | None:
    """(lo, hi), the central `confidence` percentile interval of one sample, or None when its
    finite values do not vary: a bootstrap of budgets that each hold only the 3 sizes a parabola
    needs fits the sweep itself again and again, and a zero-width interval would claim a
    certainty it does not have."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) <= 1e-9 * np.max(np.abs(v)):
        return None
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return float(lo), float(hi)


def resample_indices(n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of one bootstrap resample (n draws with replacement from range(n))."""
    return rng.integers(0, n, size=n)


def resample_within_groups(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of one stratified resample: each group's rows are drawn with replacement from
    that group only, so every group keeps its size (an IsoFLOP budget keeps its points)."""
    groups = np.asarray(groups)
    parts = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        parts.append(members[rng.integers(0, members.size, size=members.size)])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=int)
