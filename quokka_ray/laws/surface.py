"""The IsoFLOP surface: what a fitted IsoFLOP law says about budgets and sizes it did not run.

Approach 1 gives one parabola in x = ln N per budget. A proposal (a run at a budget never
measured) and run suggestions (how a new run would move the fit) need those parabolas between
and beyond the budgets, so this module reads them as one surface

    loss(N, C) = L_opt(C) + kappa (ln N - ln N_opt(C))^2

with N_opt(C) = k_N C^a the fit's own power law, L_opt(C) = k_L C^c a power law through the
vertices' losses, and kappa the budgets' mean curvature (the c2 of each parabola).

Why a power law for L_opt: with the two to four budgets of a sweep nothing richer is
identifiable. It has no floor (Chinchilla's E), so far beyond the budgets run it predicts too
low a loss: proposals state how far they extrapolate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .budgets import budget_labels
from .isoflop import BudgetParabola
from .powerlaw import PowerLawFit, fit_power_law


@dataclass(frozen=True)
class IsoFlopSurface:
    """loss(N, C) = L_opt(C) + curvature (ln N - ln N_opt(C))^2; N non-embedding parameters,
    C FLOPs, loss nats/token."""

    n_law: PowerLawFit
    """N_opt(C) = k C^exponent through the vertices (the IsoFLOP fit's law)."""
    loss_law: PowerLawFit
    """L_opt(C) = k C^exponent through the vertices' losses."""
    curvature: float
    """Mean c2 of the budgets' parabolas in ln N (loss per (ln N)^2)."""

    @classmethod
    def from_parabolas(cls, parabolas: Sequence[BudgetParabola]) -> IsoFlopSurface:
        """The surface through two or more budgets' parabolas (those of a fit or a replicate)."""
        C = [p.budget_flops for p in parabolas]
        return cls(
            n_law=fit_power_law(C, [p.n_opt for p in parabolas]),
            loss_law=fit_power_law(C, [p.loss_opt for p in parabolas]),
            curvature=float(np.mean([p.coefficients[0] for p in parabolas])),
        )

    def n_opt(self, C) -> float:
        return self.n_law(C)

    def loss_opt(self, C) -> float:
        return self.loss_law(C)

    def loss(self, N, C):
        """Predicted final loss of N parameters trained with C FLOPs."""
        gap = np.log(np.asarray(N, dtype=float)) - np.log(self.n_opt(C))
        out = self.loss_opt(C) + self.curvature * gap * gap
        return float(out) if np.ndim(out) == 0 else out

    def parabola(self, C: float, centre: float) -> np.ndarray:
        """(c2, c1, c0) of the surface's parabola at C in x - centre, x = ln N."""
        v = float(np.log(self.n_opt(C))) - centre
        c2 = self.curvature
        return np.array([c2, -2.0 * c2 * v, self.loss_opt(C) + c2 * v * v])


def residual_sd(parabolas: Sequence[BudgetParabola], C, N, loss) -> tuple[float, int]:
    """(sd, degrees of freedom) of the runs' losses about their budget's parabola, pooled over
    the budgets with a vertex: the run-to-run noise the laws do not explain. sd is nan when no
    budget has more runs than a parabola's 3 coefficients."""
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    labels = budget_labels(C)
    rss, dof = 0.0, 0
    for p in parabolas:
        members = np.isclose(labels, p.budget_flops, rtol=1e-9)
        if members.sum() <= 3:
            continue
        residuals = loss[members] - p.loss_at(N[members])
        rss += float(residuals @ residuals)
        dof += int(members.sum()) - 3
    return (float(np.sqrt(rss / dof)) if dof else float("nan")), dof
