"""Grouping runs into compute budgets.

An IsoFLOP budget is a number the sweep chose, but it reaches MLflow through float arithmetic
(6 N D with N and D rounded to whole layers and steps), so runs of one budget can differ in
the last digits. Budgets within a relative tolerance are one budget.
"""

from __future__ import annotations

import numpy as np

#: Runs whose budgets differ by less than this (relative) belong to the same budget.
BUDGET_RTOL = 0.01


def budget_labels(C, rtol: float = BUDGET_RTOL) -> np.ndarray:
    """For each run, the representative budget (the group's median) of its group of budgets.

    Sorted budgets are chained into one group while each is within rtol of the previous one;
    non-finite budgets get nan.
    """
    C = np.asarray(C, dtype=float).ravel()
    labels = np.full(C.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(C))
    if finite.size == 0:
        return labels
    order = finite[np.argsort(C[finite], kind="stable")]
    start = 0
    for i in range(1, order.size + 1):
        if i == order.size or C[order[i]] > C[order[i - 1]] * (1.0 + rtol):
            members = order[start:i]
            labels[members] = np.median(C[members])
            start = i
    return labels
