"""The Huber loss on log-loss residuals, shared by the parametric and data-constrained fits.

Hoffmann et al. (2022) chose Huber with delta = 1e-3 on log loss: residuals of a good fit are a
few 1e-3, so the loss is quadratic for the closest points and linear (outlier-robust) beyond.
"""

from __future__ import annotations

import numpy as np

#: Huber threshold on log-loss residuals used by Chinchilla, Besiroglu et al. and Quokka.
DEFAULT_DELTA = 1e-3


def huber(residual: np.ndarray, delta: float) -> np.ndarray:
    """Elementwise Huber loss: r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond.

    Same convention as `scipy.special.huber(delta, r)`, which Besiroglu et al. used.
    """
    abs_r = np.abs(residual)
    return np.where(abs_r <= delta, 0.5 * residual * residual, delta * (abs_r - 0.5 * delta))


def huber_derivative(residual: np.ndarray, delta: float) -> np.ndarray:
    """d huber / d r: the residual clipped to [-delta, delta]."""
    return np.clip(residual, -delta, delta)
