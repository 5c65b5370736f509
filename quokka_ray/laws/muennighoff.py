"""Muennighoff et al. (2023)'s data-constrained law: repeated tokens and excess parameters
decay in value with half-lives R*_D and R*_N.

    D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D)),  R_D = D / U_D - 1  (repeats after the 1st epoch)
    N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N)),  R_N = N / U_N - 1,
    U_N = min(N, N_opt(U_D))  (the compute-optimal size for D = U_D tokens under the base law)
    L = E + A / N'^alpha + B / D'^beta

Units: N parameters, U (= U_D) unique tokens, D = U epochs tokens, loss nats/token. Their
procedure, followed by fit_muennighoff(base=...): fit the base law on single-epoch runs, then
only R*_D and R*_N on the repeated ones.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .errors import LawInputError
from .huber import DEFAULT_DELTA, huber
from .parametric import ParametricFit
from .threads import single_threaded_blas


def effective_data_muennighoff(U, D, R_star):
    """D' in tokens: U unique tokens seen for D tokens in total, half-life R_star repeats.

    R = D/U - 1 repeats beyond the first epoch; less than one epoch (D < U) is worth D."""
    U = np.asarray(U, dtype=float)
    D = np.asarray(D, dtype=float)
    unique = np.minimum(U, D)
    repeats = np.maximum(D / unique - 1.0, 0.0)
    out = unique + unique * R_star * (-np.expm1(-repeats / R_star))
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class MuennighoffLaw:
    """The base law (E, A, B, alpha, beta) with repetition half-lives R*_D and R*_N."""

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    R_star_D: float
    R_star_N: float

    @property
    def base(self) -> ParametricFit:
        return ParametricFit(E=self.E, A=self.A, B=self.B, alpha=self.alpha, beta=self.beta)

    def optimal_params_for_tokens(self, U):
        """N_opt for which the base law's compute-optimal D_opt equals U tokens."""
        base = self.base
        x = (np.asarray(U, float) * base.G) ** (1.0 / base.b)  # C / 6 at which D_opt = U
        return base.G * x**base.a

    def effective_params(self, N, U):
        """N' in parameters: N beyond the optimum size for U tokens decays with R*_N."""
        N = np.asarray(N, float)
        base_n = np.minimum(N, self.optimal_params_for_tokens(U))
        return effective_data_muennighoff(base_n, N, self.R_star_N)

    def loss(self, N, U, epochs):
        """Predicted loss (nats/token) of N parameters after `epochs` passes over U tokens."""
        d_eff = effective_data_muennighoff(
            U, np.asarray(U, float) * np.asarray(epochs, float), self.R_star_D
        )
        out = (
            self.E
            + self.A * self.effective_params(N, U) ** (-self.alpha)
            + self.B * d_eff ** (-self.beta)
        )
        return float(out) if np.ndim(out) == 0 else out


#: Muennighoff et al. (2023), C4: their published coefficients.
MUENNIGHOFF_C4 = MuennighoffLaw(
    A=520.8, B=1487.7, E=1.869, alpha=0.3527, beta=0.3527, R_star_D=15.39, R_star_N=5.31
)


def fit_muennighoff(
    N, U, epochs, loss, *, base: ParametricFit, delta: float = DEFAULT_DELTA
) -> MuennighoffLaw:
    """Fit R*_D and R*_N with the base law's E, A, B, alpha, beta held fixed (Muennighoff et
    al.'s second step), by Huber(delta) on log loss, L-BFGS-B in log R* from a 5x5 grid."""
    N, U, epochs, loss = (np.asarray(v, dtype=float).ravel() for v in (N, U, epochs, loss))
    if not (N.size == U.size == epochs.size == loss.size) or N.size < 3:
        raise LawInputError(
            "Muennighoff fit needs N, U, epochs and loss of one length, 3 runs or more"
        )
    log_y = np.log(loss)

    def objective(log_r):
        law = MuennighoffLaw(
            A=base.A,
            B=base.B,
            E=base.E,
            alpha=base.alpha,
            beta=base.beta,
            R_star_D=math.exp(log_r[0]),
            R_star_N=math.exp(log_r[1]),
        )
        return float(np.sum(huber(np.log(law.loss(N, U, epochs)) - log_y, delta))) / (
            N.size * delta**2
        )

    starts = np.log(list(itertools.product([1.0, 5.0, 15.0, 50.0, 200.0], repeat=2)))
    best = None
    with single_threaded_blas(), np.errstate(all="ignore"):
        for x0 in starts:
            res = minimize(
                objective,
                x0,
                method="L-BFGS-B",
                bounds=[(-5.0, 10.0)] * 2,
                options={"ftol": 1e-13, "gtol": 1e-9},
            )
            if best is None or res.fun < best.fun:
                best = res
    return MuennighoffLaw(
        A=base.A,
        B=base.B,
        E=base.E,
        alpha=base.alpha,
        beta=base.beta,
        R_star_D=math.exp(best.x[0]),
        R_star_N=math.exp(best.x[1]),
    )
