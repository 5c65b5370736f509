"""The IsoFLOP law fitted in one piece: every budget's parabola in x = ln N has its vertex on the
power law, and the law's intervals come from the likelihood of all runs at once.

The model, for run i of budget b (l_b = ln C_b - mean ln C over the budgets):

    loss_bi = L_b + kappa_b (x_bi - v_b)^2,    v_b = a l_b + c,    kappa_b >= 0,

with L_b (the loss at the vertex) and kappa_b (the curvature) free per budget and the vertices
tied to the power law ln N_opt(C) = a l + c. Fitting one parabola per budget and then a line
through the vertices (the paper's approach 1) weighs every vertex alike, however flat its
parabola; a budget whose runs barely rise on either side then drags the line, opens downward,
or lies outside the sizes run and must be dropped. In the joint fit each budget weighs what its
runs say about the vertex, no budget has to be dropped, and the estimate is the least-squares
one of the whole sweep (the maximum likelihood one under Gaussian run-to-run noise of one size).

For fixed (a, c) the model is linear in (L_b, kappa_b), so the residual sum of squares is a sum
of closed-form per-budget terms f_b(v_b) (variable projection). Intervals are profile-
likelihood intervals with the F calibration of nonlinear least squares: a value g of a, or of
ln N_opt at any budget, is inside when the best fit constrained to it has

    RSS(g) <= RSS_min (1 + F_{1, dof}(confidence) / dof),    dof = runs - 2 budgets - 2,

which is exact for a linear model with Gaussian noise and accounts for a noise level estimated
from few spare runs (a bootstrap of 3 to 6 runs per budget cannot). An interval whose edge is
not reached within MAX_EXPONENT_SPAN of the estimate is unbounded: the runs cannot bound it, and
it is reported as missing, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.stats import f as f_distribution

from .bootstrap import CONFIDENCE
from .errors import LawInputError

#: How far (in the exponent, or in ln N at a budget) a profile interval is searched on each
#: side of the estimate; an edge further out is reported as unbounded.
MAX_EXPONENT_SPAN = 2.0
MAX_LOG_N_SPAN = 6.0
#: Points of the coarse grid the first minimisation starts from, per parameter.
_GRID = 81
#: How far (in ln N) the inner minimisation of a profile searches around the estimate.
_INNER_SPAN = 3.0
#: Spacing (in ln N) of each budget's tabulated RSS: the interpolation error of the RSS is
#: about kappa^2 runs step^2 / 8, far below the interval threshold's margin over the minimum.
_TABLE_STEP = 0.004


@dataclass(frozen=True)
class BudgetRuns:
    """One budget's runs: C in FLOPs, x = ln N (non-embedding parameters), loss (nats/token)."""

    budget_flops: float
    x: np.ndarray
    loss: np.ndarray

    def rss_at(self, v):
        """The least residual sum of squares of loss = L + kappa (x - v)^2 with kappa >= 0, for
        each vertex position v (any shape): the closed form of a line in z = (x - v)^2."""
        v = np.asarray(v, dtype=float)
        z = (self.x.reshape((-1,) + (1,) * v.ndim) - v) ** 2
        y = (self.loss - self.loss.mean()).reshape((-1,) + (1,) * v.ndim)
        zc = z - z.mean(axis=0)
        szz = (zc * zc).sum(axis=0)
        szy = (zc * y).sum(axis=0)
        kappa = np.maximum(np.where(szz > 0, szy / np.where(szz > 0, szz, 1.0), 0.0), 0.0)
        # Rounding can take an exact fit's RSS a hair below zero.
        return np.maximum((y * y).sum(axis=0) - 2.0 * kappa * szy + kappa * kappa * szz, 0.0)

    def curve_at(self, v: float) -> tuple[float, float]:
        """(L, kappa) of the best parabola with its vertex at v."""
        z = (self.x - v) ** 2
        zc = z - z.mean()
        szz = float(zc @ zc)
        kappa = max(float(zc @ (self.loss - self.loss.mean())) / szz, 0.0) if szz > 0 else 0.0
        return float(self.loss.mean() - kappa * z.mean()), kappa


@dataclass(frozen=True)
class JointIsoFlopFit:
    """ln N_opt(C) = a (ln C - log_budget_mean) + c, with every budget's parabola."""

    a: float
    c: float
    log_budget_mean: float
    """Mean ln C over the budgets fitted: the centre that decorrelates a and c."""
    budgets: tuple[BudgetRuns, ...]
    rss: float
    dof: int
    """Runs less the 2 + 2 x budgets coefficients: the spare runs behind the noise estimate."""
    confidence: float = CONFIDENCE
    _rss_tables: list | None = field(default=None, repr=False, compare=False)

    @property
    def residual_sd(self) -> float:
        """Run-to-run noise about the joint fit (nats); nan without a spare run."""
        return math.sqrt(self.rss / self.dof) if self.dof > 0 else math.nan

    @property
    def threshold(self) -> float:
        """The largest RSS inside the profile interval."""
        return self.rss * (1.0 + f_distribution.ppf(self.confidence, 1, self.dof) / self.dof)

    def log_n_opt(self, budget_flops: float) -> float:
        return self.a * (math.log(budget_flops) - self.log_budget_mean) + self.c

    def total_rss(self, a: float, c: float) -> float:
        return float(sum(b.rss_at(a * self._l(b) + c) for b in self.budgets))

    def _l(self, b: BudgetRuns) -> float:
        return math.log(b.budget_flops) - self.log_budget_mean

    def curves(self) -> list[tuple[float, float, float]]:
        """(N_opt, L, kappa) of each budget's parabola of the joint fit."""
        out = []
        for b in self.budgets:
            v = self.a * self._l(b) + self.c
            out.append((math.exp(v), *b.curve_at(v)))
        return out

    def exponent_interval(self) -> tuple[float, float] | None:
        """Profile interval of a: for each a, the best c."""
        if self.dof < 1:
            return None
        a = self.a + np.linspace(-MAX_EXPONENT_SPAN, MAX_EXPONENT_SPAN, 401)
        c = self.c + np.linspace(-_INNER_SPAN, _INNER_SPAN, 601)
        rss = self._table_rss(a[:, None], c[None, :], lambda a_, c_: (a_, c_))
        return crossings(a, _row_minima(rss), self.a, self.threshold)

    def log_n_opt_interval(self, budget_flops: float) -> tuple[float, float] | None:
        """Profile interval of ln N_opt at `budget_flops` (measured or not): for each value u,
        the best a with the law through u there."""
        if self.dof < 1:
            return None
        l_star = math.log(budget_flops) - self.log_budget_mean
        u_hat = self.log_n_opt(budget_flops)
        u = u_hat + np.linspace(-MAX_LOG_N_SPAN, MAX_LOG_N_SPAN, 601)
        a = self.a + np.linspace(-MAX_EXPONENT_SPAN, MAX_EXPONENT_SPAN, 401)
        rss = self._table_rss(u[:, None], a[None, :], lambda u_, a_: (a_, u_ - a_ * l_star))
        return crossings(u, _row_minima(rss), u_hat, self.threshold)

    def _table_rss(self, p, q, to_ac) -> np.ndarray:
        """RSS on the grid of (p, q), mapped to (a, c) by `to_ac`, from each budget's RSS
        tabulated along its vertex position (the profiles need millions of evaluations)."""
        a, c = to_ac(p, q)
        total = np.zeros(np.broadcast_shapes(np.shape(a), np.shape(c)))
        for b, (start, values) in zip(self.budgets, self._tables(), strict=True):
            # Linear interpolation on the uniform table, by index arithmetic (np.interp's
            # search is most of the cost).
            where = np.clip((a * self._l(b) + c - start) / _TABLE_STEP, 0.0, values.size - 1.001)
            k = where.astype(np.intp)
            frac = where - k
            total += values[k] * (1.0 - frac) + values[k + 1] * frac
        return total

    def _tables(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._rss_tables is None:
            tables = []
            for b in self.budgets:
                reach = MAX_LOG_N_SPAN + MAX_EXPONENT_SPAN * (abs(self._l(b)) + 1.0) + _INNER_SPAN
                grid = np.arange(b.x.min() - reach, b.x.max() + reach, _TABLE_STEP)
                tables.append((float(grid[0]), b.rss_at(grid)))
            object.__setattr__(self, "_rss_tables", tables)
        return self._rss_tables


def fit_joint_isoflop(budgets: Sequence[BudgetRuns], confidence: float = CONFIDENCE
                      ) -> JointIsoFlopFit:
    """The least-squares fit of the joint model; needs 2 budgets of 3 or more sizes each."""
    budgets = tuple(budgets)
    if len(budgets) < 2:
        raise LawInputError(f"IsoFLOP fit needs at least 2 budgets of 3 or more sizes, got "
                            f"{len(budgets)}")
    log_c = np.log([b.budget_flops for b in budgets])
    centre = float(log_c.mean())
    ls = log_c - centre
    xs = np.concatenate([b.x for b in budgets])
    # A coarse grid first: the RSS surface has flat directions (a budget with kappa = 0 says
    # nothing of its vertex), so a local search from one start could stop on a shoulder.
    a_grid = np.linspace(-1.0, 2.0, _GRID)[:, None]
    c_grid = np.linspace(xs.min() - 2.0, xs.max() + 2.0, _GRID)[None, :]
    rss = sum(b.rss_at(a_grid * lb + c_grid) for b, lb in zip(budgets, ls, strict=True))
    i, j = np.unravel_index(int(np.argmin(rss)), rss.shape)

    def total(p):
        return float(sum(b.rss_at(p[0] * lb + p[1]) for b, lb in zip(budgets, ls, strict=True)))

    best = minimize(total, [a_grid[i, 0], c_grid[0, j]], method="Nelder-Mead",
                    options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 4000})
    runs = int(xs.size)
    return JointIsoFlopFit(a=float(best.x[0]), c=float(best.x[1]), log_budget_mean=centre,
                           budgets=budgets, rss=max(float(best.fun), 0.0),
                           dof=runs - 2 * len(budgets) - 2, confidence=confidence)


def _row_minima(rss: np.ndarray) -> np.ndarray:
    """Each row's minimum, refined by the parabola through the grid minimum and its neighbours
    (the inner minimisation of a profile)."""
    k = np.clip(np.argmin(rss, axis=1), 1, rss.shape[1] - 2)
    rows = np.arange(rss.shape[0])
    left, mid, right = rss[rows, k - 1], rss[rows, k], rss[rows, k + 1]
    curvature = left - 2.0 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.where(curvature > 0, (right - left) ** 2 / (8.0 * curvature), 0.0)
    return np.minimum(mid - drop, rss.min(axis=1))


def crossings(values: np.ndarray, profile: np.ndarray, estimate: float, threshold: float
               ) -> tuple[float, float] | None:
    """Where the profile, tabulated at increasing `values`, crosses the threshold on each side
    of the estimate (linear interpolation); None when a side stays below it to the grid's end."""
    above = profile > threshold
    centre = int(np.searchsorted(values, estimate))
    below_side = np.flatnonzero(above[:centre])
    above_side = np.flatnonzero(above[centre:])
    if below_side.size == 0 or above_side.size == 0:
        return None
    i = below_side[-1]  # last grid point above the threshold left of the estimate
    j = centre + above_side[0]  # first one right of it

    def cross(k_out: int, k_in: int) -> float:
        p_out, p_in = profile[k_out] - threshold, profile[k_in] - threshold
        return float(values[k_in] + (values[k_out] - values[k_in]) * p_in / (p_in - p_out))

    return cross(i, i + 1), cross(j, j - 1)
