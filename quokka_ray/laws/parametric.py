"""Chinchilla's parametric law L(N, D) = E + A / N^alpha + B / D^beta (Chinchilla approach 3,
Quokka approach 2), its fit, and its compute-optimal allocation.

Units: N in non-embedding parameters (Chinchilla's data count total parameters), D in training
tokens, L in nats per token, C = 6 N D in FLOPs.

The fit follows Hoffmann et al. (2022) and Besiroglu et al. (2024): with A = e^a, B = e^b,
E = e^e, minimise sum_i Huber_delta(log L_pred_i - log L_i), delta = 1e-3, where
log L_pred = logsumexp(a - alpha log N, b - beta log D, e), by L-BFGS from Chinchilla's grid of
4,500 initialisations. `grid_search_parametric` (parametric_reference.py) is that reference
search, one scipy L-BFGS-B run per start (about 21 s on 240 points). `fit_parametric` reaches the same optimum in a fraction of
a second: it scores every start at once (one vectorised evaluation), runs L-BFGS only from the
best-scoring distinct starts, and polishes the best few optima to machine precision. Most grid
starts are wasted anyway: one with, say, a = 0 and alpha = 2 makes A / N^alpha vanish, its
gradient is ~0, and L-BFGS stops where it began.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber as scipy_huber
from scipy.special import logsumexp

from .bootstrap import CONFIDENCE, Progress, percentile_intervals, resample_indices, steps
from .errors import LawInputError
from .huber import DEFAULT_DELTA, huber, huber_derivative
from .threads import single_threaded_blas

#: Coefficients reported with intervals, in this order.
PARAM_NAMES = ("E", "A", "B", "alpha", "beta")

# L-BFGS options of the fast fit, on an objective scaled to O(1) (see _Problem). scipy stops
# when the relative decrease is below ftol, measured against max(|f|, 1): on the unscaled
# objective (~1e-3 on Chinchilla's data) its default ftol would stop at a ~1e-6 relative gap.
_SEARCH_OPTIONS = {"ftol": 1e-12, "gtol": 1e-8, "maxiter": 2000, "maxcor": 20}
_POLISH_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000, "maxcor": 30}
# Largest log of E, A or B that exp turns into a finite float.
_MAX_LOG_COEFFICIENT = math.log(np.finfo(float).max)
# Screening evaluates (starts x points) arrays; chunks bound their memory (~8 MB per array).
_SCREEN_CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class ParametricFit:
    """L(N, D) = E + A / N^alpha + B / D^beta: loss in nats/token, N parameters, D tokens."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    #: name -> (lo, hi) 95% bootstrap interval for E, A, B, alpha, beta, a and b; empty unless
    #: the fit was bootstrapped.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Sum of Huber(delta) of log-loss residuals at the estimate (nan for published laws).
    objective: float = math.nan
    n_points: int = 0
    #: Bootstrap replicates that converged, rows (E, A, B, alpha, beta); None without bootstrap.
    bootstrap_samples: np.ndarray | None = field(default=None, repr=False, compare=False)

    def predict(self, N, D):
        """Predicted loss (nats/token) for N parameters trained on D tokens."""
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        out = self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)
        return float(out) if out.ndim == 0 else out

    @property
    def a(self) -> float:
        """Exponent of N_opt = k_N C^a: beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt = k_D C^b: alpha / (alpha + beta) (a + b = 1)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """(alpha A / (beta B))^(1 / (alpha + beta)): N_opt = G (C/6)^a, D_opt = (C/6)^b / G."""
        if not (self.alpha > 0 and self.beta > 0 and self.A > 0 and self.B > 0):
            raise ValueError(
                "no compute-optimal allocation: A, B, alpha and beta must be positive, got "
                f"A={self.A:g}, B={self.B:g}, alpha={self.alpha:g}, beta={self.beta:g}"
            )
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    @property
    def k_N(self) -> float:
        """Prefactor of N_opt = k_N C^a (C in FLOPs)."""
        return self.G * 6.0 ** (-self.a)

    @property
    def k_D(self) -> float:
        """Prefactor of D_opt = k_D C^b (C in FLOPs)."""
        return 6.0 ** (-self.b) / self.G

    def optimal_allocation(self, C):
        """(N_opt, D_opt) minimising the loss at C = 6 N D FLOPs."""
        x = np.asarray(C, dtype=float) / 6.0
        n_opt = self.G * x**self.a
        d_opt = x**self.b / self.G
        if n_opt.ndim == 0:
            return float(n_opt), float(d_opt)
        return n_opt, d_opt

    def optimal_loss(self, C):
        """Loss at the compute-optimal allocation for C FLOPs."""
        return self.predict(*self.optimal_allocation(C))

    def coefficients(self) -> dict[str, float]:
        """E, A, B, alpha, beta as a dict."""
        return {name: float(getattr(self, name)) for name in PARAM_NAMES}


def chinchilla_grid() -> np.ndarray:
    """Hoffmann et al.'s 4,500 initialisations as rows (a, b, e, alpha, beta):
    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}
    (Besiroglu et al.'s code: np.arange(-1, 1.5, 0.5) for e, whose end is excluded)."""
    exps = np.arange(0.0, 2.5, 0.5)
    return np.array(
        list(
            itertools.product(
                np.arange(0.0, 30.0, 5.0),
                np.arange(0.0, 30.0, 5.0),
                np.arange(-1.0, 1.5, 0.5),
                exps,
                exps,
            )
        ),
        dtype=float,
    )


def parametric_objective(fit_or_params, N, D, loss, *, delta: float = DEFAULT_DELTA) -> float:
    """Sum of Huber(delta) of log-loss residuals, written as Besiroglu et al. wrote it (scipy's
    huber and logsumexp), independent of the fitters' own code so it can check them.

    fit_or_params: a ParametricFit, or raw (a, b, e, alpha, beta)."""
    if isinstance(fit_or_params, ParametricFit):
        f = fit_or_params
        a, b, e, alpha, beta = math.log(f.A), math.log(f.B), math.log(f.E), f.alpha, f.beta
    else:
        a, b, e, alpha, beta = (float(v) for v in fit_or_params)
    log_n, log_d = np.log(np.asarray(N, float)), np.log(np.asarray(D, float))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    return float(np.sum(scipy_huber(delta, logsumexp(terms, axis=0) - np.log(loss))))


class _Problem:
    """The Huber objective in centred coordinates theta = (a_c, b_c, e, alpha, beta), with
    a_c = a - alpha * mean(log N) and b_c = b - beta * mean(log D).

    Why centred: log N spans ~18-25, so in raw coordinates a and alpha move together along a
    narrow valley; centring decorrelates them and L-BFGS needs several times fewer steps.
    Why scaled: the objective is divided by n delta^2 so that it is O(1) and scipy's relative
    tolerances mean what they say (see _SEARCH_OPTIONS)."""

    def __init__(self, log_n, log_d, log_loss, delta, centre_n=None, centre_d=None):
        self.delta = float(delta)
        self.log_loss = np.asarray(log_loss, float)
        self.centre_n = float(np.mean(log_n)) if centre_n is None else centre_n
        self.centre_d = float(np.mean(log_d)) if centre_d is None else centre_d
        self.x_n = np.asarray(log_n, float) - self.centre_n
        self.x_d = np.asarray(log_d, float) - self.centre_d
        self.scale = 1.0 / (self.log_loss.size * self.delta**2)

    def to_centred(self, raw: np.ndarray) -> np.ndarray:
        t = np.array(raw, dtype=float)
        t[..., 0] -= t[..., 3] * self.centre_n
        t[..., 1] -= t[..., 4] * self.centre_d
        return t

    def to_raw(self, centred: np.ndarray) -> np.ndarray:
        t = np.array(centred, dtype=float)
        t[..., 0] += t[..., 3] * self.centre_n
        t[..., 1] += t[..., 4] * self.centre_d
        return t

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Scaled objective and its analytic gradient at centred theta."""
        a, b, e, alpha, beta = theta
        u1 = a - alpha * self.x_n
        u2 = b - beta * self.x_d
        m = np.maximum(np.maximum(u1, u2), e)  # shift for a stable logsumexp
        w1, w2, w3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(e - m)
        s = w1 + w2 + w3
        r = m + np.log(s) - self.log_loss  # log L_pred - log L
        f = self.scale * float(np.sum(huber(r, self.delta)))
        # d logsumexp / d u_k = w_k / s (softmax weights)
        psi = (self.scale * huber_derivative(r, self.delta)) / s
        q1, q2 = psi * w1, psi * w2
        grad = np.array(
            [
                q1.sum(),
                q2.sum(),
                float(np.sum(psi * w3)),
                -float(q1 @ self.x_n),
                -float(q2 @ self.x_d),
            ]
        )
        if not np.isfinite(f):
            return math.inf, np.zeros(5)
        return f, grad

    def values_raw(self, raw: np.ndarray) -> np.ndarray:
        """Unscaled objective at many raw (a, b, e, alpha, beta) rows at once."""
        raw = np.atleast_2d(raw)
        log_n = self.x_n + self.centre_n
        log_d = self.x_d + self.centre_d
        chunk = max(1, _SCREEN_CHUNK_ELEMENTS // max(1, log_n.size))
        out = np.empty(raw.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            for lo in range(0, raw.shape[0], chunk):
                t = raw[lo : lo + chunk]
                pred = np.logaddexp(
                    np.logaddexp(t[:, :1] - t[:, 3:4] * log_n, t[:, 1:2] - t[:, 4:5] * log_d),
                    t[:, 2:3],
                )
                out[lo : lo + chunk] = huber(pred - self.log_loss, self.delta).sum(axis=1)
        return np.where(np.isfinite(out), out, np.inf)

    def minimise(self, theta0: np.ndarray, options: dict) -> tuple[np.ndarray, float]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = minimize(
                self.value_and_grad, theta0, jac=True, method="L-BFGS-B", options=options
            )
        return res.x, float(res.fun)


def _validate(N, D, loss, min_points: int = 5):
    arrays = [np.asarray(v, dtype=float).ravel() for v in (N, D, loss)]
    n, d, y = arrays
    if not (n.size == d.size == y.size):
        raise LawInputError(f"N, D and loss differ in length: {n.size}, {d.size}, {y.size}")
    for name, v in (("N", n), ("D", d), ("loss", y)):
        if not np.all(np.isfinite(v) & (v > 0)):
            raise LawInputError(f"parametric fit: {name} must be finite and positive")
    if n.size < min_points:
        raise LawInputError(f"parametric fit needs at least {min_points} runs, got {n.size}")
    return n, d, y


def _distinct(order: np.ndarray, keys: np.ndarray, count: int, rtol: float) -> list[int]:
    """The first `count` indices of `order` whose key rows differ from every one kept (by more
    than rtol relative in some column): many grid starts sit on the same plateau."""
    kept: list[int] = []
    for i in order:
        k = keys[i]
        if not np.all(np.isfinite(k)):
            continue
        if all(np.any(np.abs(k - keys[j]) > rtol * np.maximum(1.0, np.abs(keys[j]))) for j in kept):
            kept.append(int(i))
            if len(kept) == count:
                break
    return kept


def _fit_from_raw(raw: np.ndarray, objective: float, n_points: int) -> ParametricFit:
    a, b, e, alpha, beta = (float(v) for v in raw)
    return ParametricFit(
        E=math.exp(e),
        A=math.exp(a),
        B=math.exp(b),
        alpha=alpha,
        beta=beta,
        objective=objective,
        n_points=n_points,
    )


def fit_parametric(
    N,
    D,
    loss,
    *,
    delta: float = DEFAULT_DELTA,
    n_bootstrap: int = 0,
    seed: int = 0,
    grid: np.ndarray | None = None,
    n_starts: int = 32,
    n_polish: int = 4,
    confidence: float = CONFIDENCE,
    progress: Progress | None = None,
) -> ParametricFit:
    """Fit L = E + A/N^alpha + B/D^beta (N parameters, D tokens, loss nats/token).

    Minimises the Huber(delta) loss of log-loss residuals. Every start of `grid` (default:
    Chinchilla's 4,500, rows (a, b, e, alpha, beta)) is scored; L-BFGS runs from the
    `n_starts` best distinct ones; the `n_polish` best distinct optima are polished to machine
    precision and the best is returned. With n_bootstrap > 0, runs are resampled with
    replacement and refitted (warm-started from the estimate and the other optima found), and
    `intervals` holds the central `confidence` percentile intervals. `progress` is told of each
    start optimised and each replicate refitted.
    """
    n, d, y = _validate(N, D, loss)
    with single_threaded_blas():
        return _fit_parametric(
            n, d, y, delta, n_bootstrap, seed, grid, n_starts, n_polish, confidence, progress
        )


def _fit_parametric(n, d, y, delta, n_bootstrap, seed, grid, n_starts, n_polish, confidence,
                    progress=None):
    problem = _Problem(np.log(n), np.log(d), np.log(y), delta)
    starts = chinchilla_grid() if grid is None else np.atleast_2d(np.asarray(grid, float))
    scores = problem.values_raw(starts)
    # Starts on the same plateau score identically; keep one of each.
    picked = _distinct(np.argsort(scores, kind="stable"), scores[:, None], n_starts, 1e-9)
    if not picked:
        raise LawInputError("parametric fit: the objective is not finite at any start")
    optima = [problem.minimise(problem.to_centred(starts[picked[i]]), _SEARCH_OPTIONS)
              for i in steps(len(picked), progress, "parametric fit, starts")]
    xs = np.array([x for x, _ in optima])
    fs = np.array([f for _, f in optima])
    best_distinct = _distinct(np.argsort(fs, kind="stable"), xs, n_polish, 1e-4)
    polished = [problem.minimise(xs[i], _POLISH_OPTIONS) for i in best_distinct]
    x_best, f_best = min(polished, key=lambda p: p[1])
    raw_best = problem.to_raw(x_best)
    fit = _fit_from_raw(raw_best, f_best / problem.scale, n.size)
    if n_bootstrap <= 0:
        return fit
    # Warm starts for each refit: the estimate, then the other distinct optima (a resample can
    # move the global optimum into another basin).
    warm = [x_best] + [xs[i] for i in best_distinct if not np.allclose(xs[i], x_best)][:2]
    samples = _bootstrap(problem, np.log(n), np.log(d), np.log(y), warm, n_bootstrap, seed,
                         progress)
    return _with_intervals(fit, samples, confidence)


def _bootstrap(problem, log_n, log_d, log_y, warm, n_bootstrap, seed, progress=None
               ) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in steps(n_bootstrap, progress, "parametric fit, bootstrap replicates"):
        idx = resample_indices(log_n.size, rng)
        sub = _Problem(
            log_n[idx], log_d[idx], log_y[idx], problem.delta, problem.centre_n, problem.centre_d
        )
        x, f = min((sub.minimise(x0, _SEARCH_OPTIONS) for x0 in warm), key=lambda p: p[1])
        a, b, e, alpha, beta = sub.to_raw(x)
        # A degenerate replicate can run a log-prefactor past exp's range (a "cliff" law with
        # A ~ 1e400): it has no finite coefficients, so it is dropped like one that diverged.
        if np.isfinite(f) and max(a, b, e) < _MAX_LOG_COEFFICIENT:
            rows.append((math.exp(e), math.exp(a), math.exp(b), alpha, beta))
    return np.array(rows, dtype=float).reshape(-1, 5)


def _with_intervals(fit: ParametricFit, samples: np.ndarray, confidence: float) -> ParametricFit:
    named = {name: samples[:, i] for i, name in enumerate(PARAM_NAMES)}
    with np.errstate(divide="ignore", invalid="ignore"):
        named["a"] = samples[:, 4] / (samples[:, 3] + samples[:, 4])
        named["b"] = samples[:, 3] / (samples[:, 3] + samples[:, 4])
    return ParametricFit(
        E=fit.E,
        A=fit.A,
        B=fit.B,
        alpha=fit.alpha,
        beta=fit.beta,
        intervals=percentile_intervals(named, confidence),
        objective=fit.objective,
        n_points=fit.n_points,
        bootstrap_samples=samples,
    )
