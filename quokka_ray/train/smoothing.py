"""The smoothed final training loss (`final_loss`) that the compute-constrained laws fit.

Quokka fits "the final training loss, smoothed with a Gaussian window over 301 steps". At the
last step only the past half of such a window exists, so the average runs over the last
`lookback_steps` steps with Gaussian weights of sigma = lookback_steps / 3 (the half-window
spans 3 sigma), renormalised. The lookback is capped at a fraction of the run's steps
(`EvaluationConfig.smoothing_max_fraction`): on a short run an uncapped window would average
over most of training, its start included. The average lags by about 0.8 sigma steps:
negligible at the end of a decayed schedule, where the loss is flat.
"""

from __future__ import annotations

import numpy as np


def smooth_final_loss(losses, lookback_steps: int) -> float:
    """Gaussian-weighted mean of the last `lookback_steps + 1` losses (nats/token), weighted
    towards the last one; losses oldest first, one per step. Non-finite losses are skipped."""
    y = np.asarray(losses, dtype=float).ravel()
    if lookback_steps < 0:
        raise ValueError(f"lookback_steps must be >= 0, got {lookback_steps}")
    lag = (y.size - 1) - np.arange(y.size, dtype=float)  # steps before the last one
    inside = (lag <= lookback_steps) & np.isfinite(y)
    if not inside.any():
        raise ValueError("no finite loss to smooth")
    if lookback_steps == 0:
        return float(y[inside][-1])
    sigma = lookback_steps / 3.0
    weights = np.exp(-0.5 * (lag[inside] / sigma) ** 2)
    return float(np.sum(weights * y[inside]) / np.sum(weights))
