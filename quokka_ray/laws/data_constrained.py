"""Quokka's data-constrained law (Ni et al. 2025, eq. 14): loss when U unique tokens are seen
for several epochs, including the rise of validation loss past the useful number of epochs.

    L = E + A / N^alpha + B / D'^beta
    D' = U * epochs^p_e * exp(-(max(0, epochs - 1) / e_p)^gamma)
    e_p = c_p * U^m_p / N^k_p

Units: N non-embedding parameters, U unique tokens, epochs = total passes over U (D = U epochs
tokens; epochs^p_e is the epoch count raised to p_e), loss nats/token. Quokka fits final
validation loss, and found E ~ 0 (eq. 15), so E is held at 0 unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.stats import qmc

from .errors import LawInputError
from .huber import DEFAULT_DELTA, huber, huber_derivative
from .threads import single_threaded_blas

# Coefficient order of the fit's parameter vector; A, B, c_p (and E) are fitted as logs.
_NAMES = ("A", "alpha", "B", "beta", "p_e", "c_p", "m_p", "k_p", "gamma", "E")
_LOG_FITTED = {"A", "B", "c_p", "E"}
#: Bounds of the fitted parameters (logs for A, B, c_p, E): wide enough for any law seen in
#: the literature (Quokka eq. 15: ln A = 7.3, ln c_p = 5.5, gamma = 0.40), narrow enough that
#: L-BFGS-B cannot wander into overflow.
FIT_BOUNDS = {
    "A": (-10.0, 40.0),
    "alpha": (0.0, 2.0),
    "B": (-10.0, 40.0),
    "beta": (0.0, 2.0),
    "p_e": (0.0, 5.0),
    "c_p": (-20.0, 30.0),
    "m_p": (-3.0, 3.0),
    "k_p": (-3.0, 3.0),
    "gamma": (0.05, 5.0),
    "E": (-10.0, 3.0),
}
#: Box the random starts are drawn from (a sub-box of FIT_BOUNDS where laws live).
START_BOX = {
    "A": (0.0, 15.0),
    "alpha": (0.05, 1.0),
    "B": (0.0, 15.0),
    "beta": (0.05, 1.0),
    "p_e": (0.2, 2.5),
    "c_p": (-5.0, 15.0),
    "m_p": (-1.0, 1.5),
    "k_p": (-1.0, 1.5),
    "gamma": (0.2, 2.0),
    "E": (-3.0, 1.0),
}
_OPTIONS = {"ftol": 1e-14, "gtol": 1e-10, "maxiter": 5000, "maxcor": 20}


@dataclass(frozen=True)
class DataConstrainedLaw:
    """Quokka eq. 14 with its coefficients (see the module docstring for units)."""

    A: float
    alpha: float
    B: float
    beta: float
    p_e: float
    c_p: float
    m_p: float
    k_p: float
    gamma: float
    E: float = 0.0
    #: Sum of Huber(delta) of log-loss residuals at the fit (nan for published laws).
    objective: float = field(default=math.nan, compare=False)
    n_points: int = field(default=0, compare=False)

    def repetition_scale(self, N, U):
        """e_p = c_p U^m_p / N^k_p: the epochs scale of the repetition penalty."""
        return self.c_p * np.asarray(U, float) ** self.m_p / np.asarray(N, float) ** self.k_p

    def effective_data(self, N, U, epochs):
        """D' in tokens: what `epochs` passes over U unique tokens are worth."""
        epochs = np.asarray(epochs, float)
        excess = np.maximum(0.0, epochs - 1.0) / self.repetition_scale(N, U)
        return np.asarray(U, float) * epochs**self.p_e * np.exp(-(excess**self.gamma))

    def loss(self, N, U, epochs):
        """Predicted loss (nats/token) of N parameters after `epochs` passes over U tokens."""
        N = np.asarray(N, float)
        # Far past the useful epochs D' underflows to 0 and the loss is +inf: a valid answer.
        with np.errstate(divide="ignore", over="ignore"):
            d_eff = self.effective_data(N, U, epochs)
            out = self.E + self.A * N ** (-self.alpha) + self.B * d_eff ** (-self.beta)
        return float(out) if np.ndim(out) == 0 else out

    def max_epochs(self, N, U, *, grid_points: int = 512) -> float:
        """Global minimiser over epochs >= 1 of the predicted loss for N parameters, U tokens.

        Searched globally: with gamma < 1 the penalty's slope is infinite just after one epoch,
        so the loss can have a local minimum at exactly 1 epoch that a local search from there
        never leaves, while the global one lies at tens of epochs. The epochs - 1 axis is
        scanned on a log-spaced grid from 1e-6 e_p to well past the large-epoch optimum
        1 + e_p (p_e / gamma)^(1/gamma), then the best grid cell is refined.
        """
        e_p = float(self.repetition_scale(N, U))
        if not (e_p > 0 and math.isfinite(e_p)):
            raise ValueError(f"repetition scale e_p = {e_p} is not positive and finite")
        x_opt = (max(self.p_e, 1e-3) / self.gamma) ** (1.0 / self.gamma)
        hi = min(e_p * 100.0 * max(1.0, x_opt), 1e15)
        excess = np.concatenate([[0.0], np.geomspace(min(1e-6 * e_p, 1e-6), hi, grid_points)])
        losses = self.loss(N, U, 1.0 + excess)
        i = int(np.nanargmin(losses))
        if i == 0 and losses[1] >= losses[0]:
            return 1.0
        lo_x = math.log(excess[max(i - 1, 1)])
        hi_x = math.log(excess[min(i + 1, excess.size - 1)])
        res = minimize_scalar(
            lambda t: self.loss(N, U, 1.0 + math.exp(t)),
            bounds=(lo_x, hi_x),
            method="bounded",
            options={"xatol": 1e-10},
        )
        best = 1.0 + math.exp(res.x)
        return best if self.loss(N, U, best) <= losses[i] else float(1.0 + excess[i])

    def optimal_allocation(
        self, U, *, n_range: tuple[float, float] = (1e4, 1e14), grid_points: int = 121
    ) -> tuple[float, float]:
        """(N, epochs) minimising the loss for U unique tokens with compute unbounded.

        Each N uses its own max_epochs(N, U). Searched on a log grid of N over n_range, then
        refined; an answer at an end of n_range means the optimum lies beyond it (as N grows,
        e_p shrinks, so a large model gains little from repeating U).
        """

        def best_loss(log_n: float) -> float:
            n = math.exp(log_n)
            return self.loss(n, U, self.max_epochs(n, U))

        log_ns = np.linspace(math.log(n_range[0]), math.log(n_range[1]), grid_points)
        values = np.array([best_loss(t) for t in log_ns])
        i = int(np.argmin(values))
        lo, hi = log_ns[max(i - 1, 0)], log_ns[min(i + 1, log_ns.size - 1)]
        res = minimize_scalar(best_loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-8})
        log_n = res.x if res.fun <= values[i] else log_ns[i]
        n = math.exp(log_n)
        return n, self.max_epochs(n, U)

    def coefficients(self) -> dict[str, float]:
        """The ten coefficients of eq. 14 as a dict."""
        return {name: float(getattr(self, name)) for name in _NAMES}


class _Objective:
    """Huber(delta) of log-loss residuals over theta (ln A, alpha, ln B, beta, p_e, ln c_p, m_p,
    k_p, gamma[, ln E]), with its analytic gradient; scaled by 1/(n delta^2) to be O(1)."""

    def __init__(self, N, U, epochs, loss, delta, fit_irreducible):
        self.log_n, self.log_u = np.log(N), np.log(U)
        self.log_e = np.log(epochs)
        excess = np.maximum(0.0, epochs - 1.0)
        self.repeated = excess > 0
        self.log_excess = np.log(np.where(self.repeated, excess, 1.0))
        self.log_y = np.log(loss)
        self.delta = delta
        self.fit_irreducible = fit_irreducible
        self.scale = 1.0 / (self.log_y.size * delta**2)

    def value_and_grad(self, theta):
        la, alpha, lb, beta, p_e, lc, m_p, k_p, gamma = theta[:9]
        log_ep = lc + m_p * self.log_u - k_p * self.log_n
        z = np.where(self.repeated, np.exp(gamma * (self.log_excess - log_ep)), 0.0)
        log_dp = self.log_u + p_e * self.log_e - z  # ln D'
        t1 = la - alpha * self.log_n
        t2 = lb - beta * log_dp
        terms = [t1, t2] + ([np.full_like(t1, theta[9])] if self.fit_irreducible else [])
        m = np.maximum.reduce(terms)
        ws = [np.exp(t - m) for t in terms]
        s = sum(ws)
        r = m + np.log(s) - self.log_y
        f = self.scale * float(np.sum(huber(r, self.delta)))
        if not np.isfinite(f):
            return math.inf, np.zeros_like(theta)
        psi = self.scale * huber_derivative(r, self.delta) / s
        g1, g2 = psi * ws[0], psi * ws[1]
        # d ln D' / d (p_e, ln c_p, m_p, k_p, gamma); through t2 each is scaled by -beta
        gz = -beta * g2
        grad = [
            g1.sum(),
            -float(g1 @ self.log_n),
            g2.sum(),
            -float(g2 @ log_dp),
            float(gz @ self.log_e),
            float(gz @ (gamma * z)),
            float(gz @ (gamma * z * self.log_u)),
            float(gz @ (-gamma * z * self.log_n)),
            float(gz @ (-z * (self.log_excess - log_ep))),
        ]
        if self.fit_irreducible:
            grad.append(float(np.sum(psi * ws[2])))
        return f, np.array(grad)


def _theta_names(fit_irreducible: bool) -> tuple[str, ...]:
    return _NAMES if fit_irreducible else _NAMES[:9]


def law_to_theta(law: DataConstrainedLaw, fit_irreducible: bool = False) -> np.ndarray:
    """A law's coefficients as the fit's parameter vector (logs for A, B, c_p, E)."""
    return np.array(
        [
            math.log(max(getattr(law, n), 1e-300)) if n in _LOG_FITTED else getattr(law, n)
            for n in _theta_names(fit_irreducible)
        ]
    )


def _theta_to_law(theta, objective: float, n_points: int) -> DataConstrainedLaw:
    values = {
        n: (math.exp(v) if n in _LOG_FITTED else float(v))
        for n, v in zip(_theta_names(len(theta) == 10), theta, strict=True)
    }
    return DataConstrainedLaw(**values, objective=objective, n_points=n_points)


def _validate(N, U, epochs, loss):
    arrays = [np.asarray(v, dtype=float).ravel() for v in (N, U, epochs, loss)]
    if len({a.size for a in arrays}) != 1:
        raise LawInputError(f"N, U, epochs and loss differ in length: {[a.size for a in arrays]}")
    for name, a in zip(("N", "U", "epochs", "loss"), arrays, strict=True):
        if not np.all(np.isfinite(a) & (a > 0)):
            raise LawInputError(f"data-constrained fit: {name} must be finite and positive")
    if arrays[0].size < 10:
        raise LawInputError(f"data-constrained fit needs at least 10 runs, got {arrays[0].size}")
    if not np.any(arrays[2] > 1.0):
        raise LawInputError("data-constrained fit needs runs with more than one epoch")
    return arrays


def fit_data_constrained(
    N,
    U,
    epochs,
    loss,
    *,
    delta: float = DEFAULT_DELTA,
    fit_irreducible: bool = False,
    n_candidates: int = 1024,
    n_starts: int = 12,
    seed: int = 0,
    starts=None,
) -> DataConstrainedLaw:
    """Fit eq. 14 to runs (N parameters, U unique tokens, epochs passes, loss nats/token).

    Minimises Huber(delta) of log-loss residuals by L-BFGS-B within FIT_BOUNDS. Starts:
    `n_candidates` Sobol points of START_BOX (seeded) are scored and L-BFGS-B runs from the
    `n_starts` best, plus any `starts` given (DataConstrainedLaw objects). E is fixed at 0 (the
    paper's fit found E ~ 0) unless fit_irreducible.
    """
    N, U, epochs, loss = _validate(N, U, epochs, loss)
    problem = _Objective(N, U, epochs, loss, delta, fit_irreducible)
    names = _theta_names(fit_irreducible)
    bounds = [FIT_BOUNDS[n] for n in names]
    lo, hi = np.array([START_BOX[n] for n in names]).T
    candidates = qmc.scale(qmc.Sobol(len(names), seed=seed).random(n_candidates), lo, hi)
    # Score candidates on a subsample of the points: ranking starts needs no more.
    sub_idx = np.random.default_rng(seed).permutation(N.size)[: min(N.size, 400)]
    sub = _Objective(N[sub_idx], U[sub_idx], epochs[sub_idx], loss[sub_idx], delta, fit_irreducible)
    with np.errstate(all="ignore"):
        scores = np.array([sub.value_and_grad(c)[0] for c in candidates])
    chosen = [candidates[i] for i in np.argsort(scores)[:n_starts]]
    chosen += [
        np.clip(law_to_theta(s, fit_irreducible), *np.array(bounds).T) for s in (starts or [])
    ]
    best_x, best_f = None, math.inf
    for x0 in chosen:
        with single_threaded_blas(), np.errstate(all="ignore"):
            res = minimize(
                problem.value_and_grad,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options=_OPTIONS,
            )
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    if best_x is None:
        raise LawInputError("data-constrained fit failed: no start reached a finite objective")
    return _theta_to_law(best_x, best_f / problem.scale, N.size)


def data_constrained_objective(
    law: DataConstrainedLaw, N, U, epochs, loss, *, delta: float = DEFAULT_DELTA
) -> float:
    """Sum of Huber(delta) of log-loss residuals of `law` on the runs."""
    pred = np.log(law.loss(N, U, epochs))
    return float(np.sum(huber(pred - np.log(np.asarray(loss, float)), delta)))
