"""IsoFLOP profiles (Chinchilla approach 1, Quokka approach 1).

Runs are grouped by compute budget C (FLOPs, C = 6 N D). Per budget, a parabola in ln N
(N = non-embedding parameters) is fitted through the final losses by least squares; its vertex
is N_opt(C), and D_opt(C) = C / (6 N_opt) tokens. Power laws N_opt = k_N C^a and
D_opt = k_D C^b are then fitted through the vertices by least squares in log space (since
D_opt = C / (6 N_opt), b = 1 - a and k_D = 1 / (6 k_N) exactly). A budget whose parabola opens
downward, or that has fewer than 3 distinct sizes, has no vertex: it is reported in
`skipped_budgets` with the reason and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import CONFIDENCE, percentile_intervals, resample_within_groups
from .budgets import budget_labels
from .errors import LawInputError
from .powerlaw import fit_power_law


@dataclass(frozen=True)
class BudgetParabola:
    """One budget's parabola loss = c2 x^2 + c1 x + c0 in x = ln N, and its vertex."""

    budget_flops: float
    #: (c2, c1, c0) with x = natural log of non-embedding parameters.
    coefficients: tuple[float, float, float]
    n_opt: float  # non-embedding parameters at the vertex
    d_opt: float  # tokens at the vertex, C / (6 N_opt)
    loss_opt: float  # loss at the vertex (nats/token)
    n_points: int
    n_range: tuple[float, float]  # smallest and largest N of the budget's runs

    @property
    def vertex_inside(self) -> bool:
        """Whether the vertex lies within the sizes run: outside, N_opt is an extrapolation."""
        return self.n_range[0] <= self.n_opt <= self.n_range[1]

    def loss_at(self, N):
        """The parabola's loss at N parameters."""
        x = np.log(np.asarray(N, dtype=float))
        c2, c1, c0 = self.coefficients
        return c2 * x * x + c1 * x + c0


@dataclass(frozen=True)
class SkippedBudget:
    """A budget left out of the power laws, and why."""

    budget_flops: float
    reason: str


@dataclass(frozen=True)
class IsoFlopFit:
    """N_opt = k_N C^a parameters and D_opt = k_D C^b tokens, C in FLOPs."""

    a: float
    b: float
    k_N: float
    k_D: float
    #: Budgets with a vertex, by increasing C: the parabolas and vertices, for plots and tables.
    budgets: list[BudgetParabola]
    skipped_budgets: list[SkippedBudget] = field(default_factory=list)
    #: name -> (lo, hi) 95% bootstrap interval for a, b, k_N, k_D; empty without bootstrap.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Bootstrap replicates whose fit succeeded / were asked for.
    n_bootstrap_ok: int = 0
    #: Each successful replicate's budgets with a vertex: the joint draws behind `intervals`,
    #: which N_opt(C) at an unmeasured budget, a proposal and run suggestions need (marginal
    #: intervals of k_N and a cannot be combined). Empty without bootstrap.
    bootstrap_budgets: tuple[tuple[BudgetParabola, ...], ...] = field(
        default=(), repr=False, compare=False)

    def n_opt(self, C):
        """Compute-optimal non-embedding parameters for C FLOPs."""
        out = self.k_N * np.asarray(C, dtype=float) ** self.a
        return float(out) if out.ndim == 0 else out

    def d_opt(self, C):
        """Compute-optimal tokens for C FLOPs."""
        out = self.k_D * np.asarray(C, dtype=float) ** self.b
        return float(out) if out.ndim == 0 else out

    def optimal_allocation(self, C):
        """(N_opt, D_opt) for C FLOPs."""
        return self.n_opt(C), self.d_opt(C)


def fit_budget_parabola(budget_flops: float, N, loss) -> BudgetParabola | SkippedBudget:
    """The parabola in ln N through one budget's (N, loss) points, or why there is none."""
    N = np.asarray(N, dtype=float)
    loss = np.asarray(loss, dtype=float)
    sizes = np.unique(N)
    if sizes.size < 3:
        return SkippedBudget(
            budget_flops, f"{sizes.size} distinct model sizes (a parabola needs 3)"
        )
    x = np.log(N)
    # Centre x before fitting: ln N ~ 20, and x^2 ~ 400 would cost digits in the normal equations.
    x_mid = float(np.mean(x))
    p2, p1, p0 = np.polyfit(x - x_mid, loss, 2)
    if not p2 > 0:
        return SkippedBudget(budget_flops, f"parabola opens downward (curvature {p2:.3g} <= 0)")
    x_opt = x_mid - p1 / (2.0 * p2)
    n_opt = math.exp(x_opt)
    coefficients = (float(p2), float(p1 - 2 * p2 * x_mid), float(p2 * x_mid**2 - p1 * x_mid + p0))
    return BudgetParabola(
        budget_flops=float(budget_flops),
        coefficients=coefficients,
        n_opt=n_opt,
        d_opt=float(budget_flops) / (6.0 * n_opt),
        loss_opt=float(p0 - p1 * p1 / (4.0 * p2)),
        n_points=int(N.size),
        n_range=(float(N.min()), float(N.max())),
    )


def _parabolas(labels, N, loss, require_vertex_inside: bool = False
               ) -> tuple[list[BudgetParabola], list[SkippedBudget]]:
    kept, skipped = [], []
    for c in np.unique(labels[np.isfinite(labels)]):
        members = labels == c
        result = fit_budget_parabola(c, N[members], loss[members])
        if (require_vertex_inside and isinstance(result, BudgetParabola)
                and not result.vertex_inside):
            result = SkippedBudget(c, f"vertex N={result.n_opt:.3g} lies outside the sizes run "
                                      f"({result.n_range[0]:.3g}-{result.n_range[1]:.3g})")
        (kept if isinstance(result, BudgetParabola) else skipped).append(result)
    return kept, skipped


def _laws(parabolas: list[BudgetParabola]):
    C = [p.budget_flops for p in parabolas]
    return fit_power_law(C, [p.n_opt for p in parabolas]), fit_power_law(
        C, [p.d_opt for p in parabolas]
    )


def fit_isoflop(
    C, N, loss, *, n_bootstrap: int = 0, seed: int = 0, confidence: float = CONFIDENCE,
    require_vertex_inside: bool = False,
) -> IsoFlopFit:
    """Fit IsoFLOP profiles: C budget FLOPs, N non-embedding parameters, loss nats/token.

    Budgets within 1% of each other are one budget (see budgets.py). With
    require_vertex_inside, a budget whose vertex lies outside the sizes it ran is skipped
    too: that vertex is an extrapolation of the parabola. With n_bootstrap > 0,
    points are resampled with replacement within each budget and everything is refitted;
    replicates with fewer than 2 usable budgets are dropped (counted in n_bootstrap_ok).
    """
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    if not (C.size == N.size == loss.size):
        raise LawInputError(f"C, N and loss differ in length: {C.size}, {N.size}, {loss.size}")
    ok = np.isfinite(C) & np.isfinite(N) & np.isfinite(loss) & (C > 0) & (N > 0)
    C, N, loss = C[ok], N[ok], loss[ok]
    labels = budget_labels(C)
    kept, skipped = _parabolas(labels, N, loss, require_vertex_inside)
    if len(kept) < 2:
        why = "; ".join(f"C={s.budget_flops:.3g}: {s.reason}" for s in skipped) or "none skipped"
        raise LawInputError(
            f"IsoFLOP fit needs at least 2 budgets with a vertex, got {len(kept)} ({why})"
        )
    n_law, d_law = _laws(kept)
    intervals: dict[str, tuple[float, float]] = {}
    replicates: list[tuple[BudgetParabola, ...]] = []
    n_ok = 0
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples: dict[str, list[float]] = {"a": [], "b": [], "k_N": [], "k_D": []}
        for _ in range(n_bootstrap):
            idx = resample_within_groups(labels, rng)
            replicate, _ = _parabolas(labels[idx], N[idx], loss[idx], require_vertex_inside)
            if len(replicate) < 2:
                continue
            rn, rd = _laws(replicate)
            for name, value in (
                ("a", rn.exponent),
                ("b", rd.exponent),
                ("k_N", rn.k),
                ("k_D", rd.k),
            ):
                samples[name].append(value)
            replicates.append(tuple(replicate))
            n_ok += 1
        intervals = percentile_intervals(samples, confidence)
    return IsoFlopFit(
        a=n_law.exponent,
        b=d_law.exponent,
        k_N=n_law.k,
        k_D=d_law.k,
        budgets=kept,
        skipped_budgets=skipped,
        intervals=intervals,
        n_bootstrap_ok=n_ok,
        bootstrap_budgets=tuple(replicates),
    )
