"""The loss at the compute-optimal size as a law of compute, with an irreducible floor, and the
prediction interval of one run's final loss at a budget not run.

On the joint IsoFLOP fit's vertices (isoflop_joint.py), every run i of budget b is modelled as

    loss_bi = E + K exp(-gamma l_b) + kappa_b (x_bi - v_b)^2,

where l_b = ln C_b - mean ln C, x = ln N and v_b the law's ln N_opt at C_b: the loss at the
optimum falls as a power of compute, K C^-gamma, towards a floor E (Chinchilla's law gives
exactly this form, with gamma = alpha beta / (alpha + beta)). A power law without a floor keeps
falling in log-log space and predicts too low a loss beyond the budgets run; a floor bends the
other way, and how much is what the budgets measured. The vertices v_b are held at the joint
fit's: a vertex's loss moves only to second order with its position, and so do these losses.

For fixed gamma the model is linear in (E, K, kappa_b), so the best fit with the prediction
pinned to a value P is a projection, and its residual sum of squares a quadratic in P; the
profile over gamma (on a fine grid) gives the F-calibrated interval of the predicted loss as
for the exponent. One run's loss adds its own noise: the prediction interval combines the
interval of the law's loss with t times the residual sd, as for linear regression,
sqrt(half-width^2 + (t sd)^2) on each side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_distribution
from scipy.stats import t as t_distribution

from .bootstrap import CONFIDENCE
from .errors import LawInputError
from .isoflop_joint import JointIsoFlopFit, crossings

#: The rates of approach to the floor that the profile searches (per unit of ln C): from a
#: floor far below (almost a straight line in ln C) to one reached within the budgets run.
GAMMA_GRID = np.geomspace(1e-3, 5.0, 800)
#: Values of the predicted loss searched on each side of the estimate, nats.
LOSS_SPAN = 3.0


@dataclass(frozen=True)
class OptimalLossLaw:
    """L_opt(C) = E + K (C / exp(log_budget_mean))^-gamma, C in FLOPs, loss in nats/token."""

    E: float
    K: float
    gamma: float
    curvatures: tuple[float, ...]
    """Each budget's kappa (loss per (ln N)^2) in this fit."""
    log_budget_mean: float
    fit: JointIsoFlopFit
    rss: float
    dof: int
    """Runs less the coefficients: E, K, gamma, a, c and one curvature per budget."""

    @property
    def residual_sd(self) -> float:
        return math.sqrt(self.rss / self.dof) if self.dof > 0 else math.nan

    def loss_opt(self, budget_flops: float) -> float:
        return self.E + self.K * math.exp(-self.gamma * self._l(budget_flops))

    def _l(self, budget_flops: float) -> float:
        return math.log(budget_flops) - self.log_budget_mean

    def predict(self, budget_flops: float, non_embedding_params: float) -> float:
        """One run's expected final loss: the optimum's, plus the mean curvature times the
        run's squared distance from the law's N_opt in ln N."""
        gap = math.log(non_embedding_params) - self.fit.log_n_opt(budget_flops)
        return self.loss_opt(budget_flops) + float(np.mean(self.curvatures)) * gap * gap

    def prediction_interval(self, budget_flops: float, non_embedding_params: float,
                            confidence: float = CONFIDENCE) -> tuple[float, float] | None:
        """Interval for one run's final loss at (C, N); None without a spare run or when the
        runs cannot bound the law's loss there."""
        if self.dof < 1:
            return None
        rss = _profile_in_prediction(self.fit, budget_flops, non_embedding_params)
        estimate = self.predict(budget_flops, non_embedding_params)
        values = estimate + np.linspace(-LOSS_SPAN, LOSS_SPAN, 3001)
        profile = rss(values)
        threshold = self.rss * (1.0 + f_distribution.ppf(confidence, 1, self.dof) / self.dof)
        mean_interval = crossings(values, profile, estimate, threshold)
        if mean_interval is None:
            return None
        spread = t_distribution.ppf(0.5 + confidence / 2.0, self.dof) * self.residual_sd
        lo, hi = mean_interval
        return (estimate - math.hypot(estimate - lo, spread),
                estimate + math.hypot(hi - estimate, spread))


def fit_optimal_loss(fit: JointIsoFlopFit) -> OptimalLossLaw:
    """The least-squares floor law on the joint fit's vertices; needs 3 budgets (E, K and
    gamma are three numbers) and a run to spare."""
    if len(fit.budgets) < 3:
        raise LawInputError(f"a loss law with a floor needs 3 budgets with a vertex, got "
                            f"{len(fit.budgets)}")
    design = _Design(fit)
    best_rss, best = math.inf, None
    for gamma in GAMMA_GRID:
        coefficients, rss = design.solve(gamma)
        if rss < best_rss:
            best_rss, best = rss, (gamma, coefficients)
    gamma, coefficients = best
    return OptimalLossLaw(E=float(coefficients[0]), K=float(coefficients[1]), gamma=float(gamma),
                          curvatures=tuple(float(k) for k in coefficients[2:]),
                          log_budget_mean=fit.log_budget_mean, fit=fit, rss=float(best_rss),
                          dof=design.runs - 5 - len(fit.budgets))


class _Design:
    """The linear part of the model for each gamma: columns 1, exp(-gamma l_b) and one
    (x - v_b)^2 column per budget."""

    def __init__(self, fit: JointIsoFlopFit) -> None:
        self.l = np.concatenate([np.full(b.x.size, math.log(b.budget_flops) - fit.log_budget_mean)
                                 for b in fit.budgets])
        self.y = np.concatenate([b.loss for b in fit.budgets])
        self.runs = self.y.size
        curvature_columns = np.zeros((self.runs, len(fit.budgets)))
        row = 0
        for j, b in enumerate(fit.budgets):
            v = fit.a * (math.log(b.budget_flops) - fit.log_budget_mean) + fit.c
            curvature_columns[row:row + b.x.size, j] = (b.x - v) ** 2
            row += b.x.size
        self.curvature_columns = curvature_columns

    def matrix(self, gamma: float) -> np.ndarray:
        return np.column_stack([np.ones(self.runs), np.exp(-gamma * self.l),
                                self.curvature_columns])

    def solve(self, gamma: float) -> tuple[np.ndarray, float]:
        coefficients, *_ = np.linalg.lstsq(self.matrix(gamma), self.y, rcond=None)
        residual = self.y - self.matrix(gamma) @ coefficients
        return coefficients, float(residual @ residual)


def _profile_in_prediction(fit: JointIsoFlopFit, budget_flops: float,
                           non_embedding_params: float):
    """P -> the least RSS of the model with its prediction at (C, N) pinned to P.

    With E = P - K exp(-gamma l*) - mean(kappa) gap^2 substituted, y - P is linear in
    (K, kappa_b) without an intercept, so for each gamma the RSS is
    |r_y|^2 - 2 P <r_y, r_1> + P^2 |r_1|^2, with r the residuals of y and of 1 after
    projecting on those columns."""
    design = _Design(fit)
    l_star = math.log(budget_flops) - fit.log_budget_mean
    gap2 = (math.log(non_embedding_params) - fit.log_n_opt(budget_flops)) ** 2
    n_budgets = len(fit.budgets)
    coefficients = []
    for gamma in GAMMA_GRID:
        columns = np.column_stack([
            np.exp(-gamma * design.l) - math.exp(-gamma * l_star),
            design.curvature_columns - gap2 / n_budgets])
        q, _ = np.linalg.qr(columns)
        r_y = design.y - q @ (q.T @ design.y)
        ones = np.ones(design.runs)
        r_1 = ones - q @ (q.T @ ones)
        coefficients.append((r_y @ r_y, r_y @ r_1, r_1 @ r_1))
    c0, c1, c2 = (np.array(v)[:, None] for v in zip(*coefficients, strict=True))

    def rss(values: np.ndarray) -> np.ndarray:
        return (c0 - 2.0 * values[None, :] * c1 + values[None, :] ** 2 * c2).min(axis=0)

    return rss
