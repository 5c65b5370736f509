"""The reference parametric fit: Chinchilla's procedure as Besiroglu et al. ran it, one scipy
L-BFGS-B run (default options) from each of the 4,500 grid starts, in raw coordinates
(a, b, e, alpha, beta), keeping the best. Slow (about 21 s on 240 points on one core) and kept
only to check `fit_parametric`, which must reach its optimum.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from .huber import DEFAULT_DELTA, huber, huber_derivative
from .parametric import ParametricFit, _fit_from_raw, _validate, chinchilla_grid
from .threads import single_threaded_blas


@dataclass(frozen=True)
class GridSearchResult:
    """The reference search: one L-BFGS-B run per grid start."""

    best: ParametricFit
    #: Final objective of every start, in grid order.
    objectives: np.ndarray = field(repr=False)
    #: Final (a, b, e, alpha, beta) of every start, in grid order.
    params: np.ndarray = field(repr=False)
    seconds: float = 0.0


def _raw_value_and_grad(theta, log_n, log_d, log_y, delta):
    """Unscaled objective and gradient in raw (a, b, e, alpha, beta), as Besiroglu et al."""
    a, b, e, alpha, beta = theta
    u1, u2 = a - alpha * log_n, b - beta * log_d
    m = np.maximum(np.maximum(u1, u2), e)
    w1, w2, w3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(e - m)
    s = w1 + w2 + w3
    r = m + np.log(s) - log_y
    f = float(np.sum(huber(r, delta)))
    psi = huber_derivative(r, delta) / s
    q1, q2 = psi * w1, psi * w2
    grad = np.array(
        [q1.sum(), q2.sum(), float(np.sum(psi * w3)), -float(q1 @ log_n), -float(q2 @ log_d)]
    )
    return (f, grad) if np.isfinite(f) else (math.inf, np.zeros(5))


def _reference_runs(args) -> list[tuple[float, np.ndarray]]:
    starts, log_n, log_d, log_y, delta = args
    out = []
    with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for x0 in starts:
            res = minimize(
                _raw_value_and_grad,
                x0,
                args=(log_n, log_d, log_y, delta),
                jac=True,
                method="L-BFGS-B",
            )
            out.append((float(res.fun), res.x))
    return out


def grid_search_parametric(
    N, D, loss, *, delta: float = DEFAULT_DELTA, grid: np.ndarray | None = None, workers: int = 1
) -> GridSearchResult:
    """The reference fit: scipy L-BFGS-B (default options, analytic gradient) from every start
    of `grid` (default Chinchilla's 4,500) in raw coordinates, keeping the best. Slow (~25 s
    for 4,500 starts on 240 points on one core); `workers` > 1 splits the starts over
    processes. `fit_parametric` must reach its optimum."""
    n, d, y = _validate(N, D, loss)
    starts = chinchilla_grid() if grid is None else np.atleast_2d(np.asarray(grid, float))
    log_n, log_d, log_y = np.log(n), np.log(d), np.log(y)
    t0 = time.perf_counter()
    chunks = np.array_split(starts, max(1, workers))
    jobs = [(c, log_n, log_d, log_y, delta) for c in chunks]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            runs = [r for part in pool.map(_reference_runs, jobs) for r in part]
    else:
        runs = _reference_runs(jobs[0])
    seconds = time.perf_counter() - t0
    objectives = np.array([f for f, _ in runs])
    params = np.array([x for _, x in runs])
    i = int(np.argmin(objectives))
    return GridSearchResult(
        best=_fit_from_raw(params[i], float(objectives[i]), n.size),
        objectives=objectives,
        params=params,
        seconds=seconds,
    )
