"""The smoothed final training loss that the compute-constrained laws fit.

Quokka fits "the final training loss, smoothed with a Gaussian window over 301 steps". Here the
window is a Gaussian over steps with sigma = window_steps / 6 (so the window spans +-3 sigma),
truncated to +-window_steps / 2 around the last step and evaluated there. After the last step
there is nothing, so only the past half of the window is used, renormalised. That average lags
by about sigma sqrt(2/pi) ~ 0.8 sigma steps (40 steps for 301): negligible at the end of a
decayed schedule, where the loss is flat, but biased upward on a curve still falling fast.
"""

from __future__ import annotations

import numpy as np

#: Window width in steps used by Quokka.
WINDOW_STEPS = 301


def smooth_final_loss(losses, window_steps: int = WINDOW_STEPS, *, steps=None) -> float:
    """Gaussian-weighted loss at the last step (nats/token).

    losses: the training loss series, oldest first. steps: the step of each loss (default
    0, 1, 2, ...), for series logged every few steps; weights are in steps, not in points.
    A series shorter than the window uses what it has; non-finite losses are skipped.
    """
    y = np.asarray(losses, dtype=float).ravel()
    s = np.arange(y.size, dtype=float) if steps is None else np.asarray(steps, dtype=float).ravel()
    if s.size != y.size:
        raise ValueError(f"steps and losses differ in length: {s.size} vs {y.size}")
    ok = np.isfinite(y) & np.isfinite(s)
    y, s = y[ok], s[ok]
    if y.size == 0:
        raise ValueError("no finite loss to smooth")
    if window_steps <= 1:
        return float(y[np.argmax(s)])
    sigma = window_steps / 6.0
    lag = s.max() - s  # steps before the last one
    inside = lag <= window_steps / 2.0
    weights = np.exp(-0.5 * (lag[inside] / sigma) ** 2)
    return float(np.sum(weights * y[inside]) / np.sum(weights))
