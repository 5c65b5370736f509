"""IsoFLOP profiles (Chinchilla approach 1, Quokka approach 1).

Runs are grouped by compute budget C (FLOPs). Each budget's runs get a parabola in ln N
(N = non-embedding parameters) of their own, whose vertex shows where that budget alone puts
its optimum (the table and plots). The law N_opt = k_N C^a is fitted jointly: every budget's
parabola with its vertex on the power law, all runs at once (isoflop_joint.py), so that a
budget counts as much as its runs pin its vertex down, and its interval is a profile-
likelihood one that holds at 3 to 6 runs per budget. On the paper's 87 points this gives
N_opt = 0.0214 C^0.514 (published: 0.0216 C^0.514).

D_opt = C / (6 N_opt) tokens, so b = 1 - a and k_D = 1 / (6 k_N); where the budgets count
exact training FLOPs (each run's FLOPs per token given), D_opt = C / F(N_opt) with F read off
the runs, and the D_opt law is the least-squares line through the budgets' D_opt. A budget
with fewer than 3 distinct sizes cannot place a vertex: it is reported in `skipped_budgets`
and left out. A budget whose own parabola opens downward has no vertex of its own (listed in
`skipped_budgets` with the reason) but stays in the joint fit, which reads from its runs as
much as they say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import CONFIDENCE, resample_within_groups
from .budgets import budget_labels
from .errors import LawInputError
from .isoflop_joint import MAX_EXPONENT_SPAN, BudgetRuns, JointIsoFlopFit, fit_joint_isoflop
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
    #: Budgets with a vertex of their own, by increasing C: the parabolas, for plots and tables.
    budgets: list[BudgetParabola]
    skipped_budgets: list[SkippedBudget] = field(default_factory=list)
    #: name -> (lo, hi): profile-likelihood intervals of a and b; empty when no run is spare
    #: or the runs cannot bound the exponent.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Why `intervals` is empty, when it is.
    interval_note: str = ""
    #: Run-to-run noise about the joint fit (nats), and the spare runs it rests on.
    residual_sd: float = math.nan
    dof: int = 0
    #: Budgets in the law (3 or more sizes each), by increasing C.
    law_budgets: tuple[float, ...] = ()
    #: Bootstrap replicates whose fit succeeded / were asked for: runs resampled within each
    #: budget, parabolas refitted. They are not the law's intervals; run suggestions average
    #: over them (suggest.py). Empty without bootstrap.
    n_bootstrap_ok: int = 0
    bootstrap_budgets: tuple[tuple[BudgetParabola, ...], ...] = field(
        default=(), repr=False, compare=False)
    #: The joint fit itself: N_opt at any budget with its interval, and the loss law with a
    #: floor that proposals predict from (optimal_loss.py).
    joint: JointIsoFlopFit | None = field(default=None, repr=False, compare=False)
    #: log-log table (ln N, ln F) of exact FLOPs per token, for exact-FLOPs budgets.
    flops_table: tuple[tuple[float, ...], tuple[float, ...]] | None = field(
        default=None, repr=False, compare=False)

    def n_opt(self, C):
        """Compute-optimal non-embedding parameters for C FLOPs."""
        out = self.k_N * np.asarray(C, dtype=float) ** self.a
        return float(out) if out.ndim == 0 else out

    def flops_per_token(self, N) -> float:
        """Training FLOPs per token the budgets count at N parameters: 6N, or the runs' exact
        FLOPs per token (interpolated) where the budgets count those."""
        if self.flops_table is None:
            return 6.0 * float(N)
        return float(_flops_per_token(self.flops_table, N))

    def d_opt(self, C):
        """Compute-optimal tokens for C FLOPs."""
        if self.flops_table is not None:
            out = np.asarray(C, dtype=float) / _flops_per_token(self.flops_table, self.n_opt(C))
        else:
            out = self.k_D * np.asarray(C, dtype=float) ** self.b
        return float(out) if np.ndim(out) == 0 else out

    def optimal_allocation(self, C):
        """(N_opt, D_opt) for C FLOPs."""
        return self.n_opt(C), self.d_opt(C)

    def n_opt_interval(self, C: float) -> tuple[float, float] | None:
        """Profile-likelihood interval of N_opt at C FLOPs, run or not."""
        if self.joint is None:
            return None
        span = self.joint.log_n_opt_interval(C)
        return None if span is None else (math.exp(span[0]), math.exp(span[1]))


def _flops_per_token(table, N):
    """Exact training FLOPs per token at N, interpolated in log-log between the runs' sizes and
    proportional to N beyond them (the 6N term dominates as models grow)."""
    log_n, log_f = (np.asarray(v) for v in table)
    x = np.log(np.asarray(N, dtype=float))
    inside = np.interp(x, log_n, log_f)
    below = log_f[0] + (x - log_n[0])
    above = log_f[-1] + (x - log_n[-1])
    return np.exp(np.where(x < log_n[0], below, np.where(x > log_n[-1], above, inside)))


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
        return SkippedBudget(budget_flops, f"parabola opens downward (curvature {p2:.3g} <= 0): "
                                           "no vertex of its own")
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


def _parabolas(labels, N, loss) -> tuple[list[BudgetParabola], list[SkippedBudget]]:
    kept, skipped = [], []
    for c in np.unique(labels[np.isfinite(labels)]):
        members = labels == c
        result = fit_budget_parabola(c, N[members], loss[members])
        (kept if isinstance(result, BudgetParabola) else skipped).append(result)
    return kept, skipped


def fit_isoflop(
    C, N, loss, *, flops_per_token=None, n_bootstrap: int = 0, seed: int = 0,
    confidence: float = CONFIDENCE,
) -> IsoFlopFit:
    """Fit IsoFLOP profiles: C budget FLOPs, N non-embedding parameters, loss nats/token.

    flops_per_token: each run's exact training FLOPs per token, where the budgets count them
    (D = C / F(N)); None: C = 6 N D. Budgets within 1% of each other are one budget (see
    budgets.py). With n_bootstrap > 0, runs are also resampled within each budget and the
    parabolas refitted (`bootstrap_budgets`, which run suggestions average over).
    """
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    if not (C.size == N.size == loss.size):
        raise LawInputError(f"C, N and loss differ in length: {C.size}, {N.size}, {loss.size}")
    ok = np.isfinite(C) & np.isfinite(N) & np.isfinite(loss) & (C > 0) & (N > 0)
    F = None
    if flops_per_token is not None:
        F = np.asarray(flops_per_token, dtype=float).ravel()
        ok &= np.isfinite(F) & (F > 0)
        F = F[ok]
    C, N, loss = C[ok], N[ok], loss[ok]
    labels = budget_labels(C)
    kept, skipped = _parabolas(labels, N, loss)
    runs, too_few = [], []
    for s in skipped:
        members = labels == s.budget_flops
        if np.unique(N[members]).size >= 3:
            runs.append(BudgetRuns(s.budget_flops, np.log(N[members]), loss[members]))
        else:
            too_few.append(s)
    for p in kept:
        members = labels == p.budget_flops
        runs.append(BudgetRuns(p.budget_flops, np.log(N[members]), loss[members]))
    runs.sort(key=lambda r: r.budget_flops)
    if len(runs) < 2:
        why = "; ".join(f"C={s.budget_flops:.3g}: {s.reason}" for s in too_few) or "none skipped"
        raise LawInputError(
            f"IsoFLOP fit needs at least 2 budgets of 3 or more sizes, got {len(runs)} ({why})")
    joint = fit_joint_isoflop(runs, confidence)
    log_k_N = joint.c - joint.a * joint.log_budget_mean
    if not -700.0 < log_k_N < 700.0:
        raise LawInputError(f"IsoFLOP fit is degenerate: exponent {joint.a:.3g} puts k_N at "
                            f"exp({log_k_N:.3g}) (the runs barely move with the budget)")
    k_N = math.exp(log_k_N)
    table = None
    if F is not None:
        order = np.argsort(N)
        log_n, first = np.unique(np.log(N[order]), return_index=True)
        table = (tuple(log_n), tuple(np.log(F[order][first])))
    intervals, note = {}, ""
    span = joint.exponent_interval()
    if joint.dof < 1:
        note = ("no run is spare to estimate the noise (a budget needs more sizes than the 2 "
                "coefficients of its parabola, and the law 2 more)")
    elif span is None:
        note = (f"the runs cannot bound the exponent within {MAX_EXPONENT_SPAN:g} of its "
                "estimate (sizes too close together for the noise)")
    else:
        intervals = {"a": span, "b": (1.0 - span[1], 1.0 - span[0])}
    budgets_c = np.array([r.budget_flops for r in runs])
    if table is None:
        b, k_D = 1.0 - joint.a, 1.0 / (6.0 * k_N)
    else:
        n_law = k_N * budgets_c ** joint.a
        d_law = fit_power_law(budgets_c, budgets_c / _flops_per_token(table, n_law))
        b, k_D = d_law.exponent, d_law.k
        intervals.pop("b", None)
    replicates, n_ok = _bootstrap(labels, N, loss, n_bootstrap, seed)
    return IsoFlopFit(
        a=joint.a, b=float(b), k_N=k_N, k_D=float(k_D), budgets=kept,
        skipped_budgets=skipped, intervals=intervals, interval_note=note,
        residual_sd=joint.residual_sd, dof=joint.dof, law_budgets=tuple(budgets_c.tolist()),
        n_bootstrap_ok=n_ok, bootstrap_budgets=replicates, joint=joint, flops_table=table)


def _bootstrap(labels, N, loss, n_bootstrap: int, seed: int):
    """Runs resampled within each budget and parabolas refitted; replicates with fewer than 2
    budgets with a vertex are dropped."""
    replicates: list[tuple[BudgetParabola, ...]] = []
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        idx = resample_within_groups(labels, rng)
        replicate, _ = _parabolas(labels[idx], N[idx], loss[idx])
        if len(replicate) >= 2:
            replicates.append(tuple(replicate))
    return tuple(replicates), len(replicates)
