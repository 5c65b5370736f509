"""Power laws y = k x^exponent fitted by least squares in log space (N_opt(C), D_opt(C),
B_opt(C), lr_opt(C))."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import LawInputError


@dataclass(frozen=True)
class PowerLawFit:
    """y = k x^exponent. Units are the caller's (x is FLOPs for every law in this package)."""

    k: float
    exponent: float
    #: name -> (lo, hi) 95% bootstrap interval for "k" and "exponent"; empty without bootstrap.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_points: int = 0

    def __call__(self, x):
        out = self.k * np.asarray(x, dtype=float) ** self.exponent
        return float(out) if out.ndim == 0 else out

    def describe(self, x_name: str = "C", y_name: str = "y") -> str:
        """`y = k x^exponent` with 3 significant digits, and intervals when present."""
        text = f"{y_name} = {self.k:.3g} {x_name}^{self.exponent:.3f}"
        if "exponent" in self.intervals:
            lo, hi = self.intervals["exponent"]
            text += f" (exponent 95% CI {lo:.3f} to {hi:.3f})"
        return text


def fit_power_law(x, y) -> PowerLawFit:
    """Least squares of log y on log x. Needs two distinct positive x."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if np.unique(x).size < 2:
        raise LawInputError(
            f"a power law needs at least 2 distinct x values, got {np.unique(x).size}"
        )
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return PowerLawFit(k=math.exp(intercept), exponent=float(slope), n_points=int(x.size))
