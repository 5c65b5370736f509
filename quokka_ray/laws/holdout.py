"""Held-out checks: fit on part of the runs, predict the rest, report the error.

A law that only describes the runs it was fitted on says little about the next, larger run.
The IsoFLOP and parametric checks hold out the largest budget (what a scaling study wants to
extrapolate to); the data-constrained check holds out whole (U, N) curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .budgets import budget_labels
from .data_constrained import DataConstrainedLaw, fit_data_constrained
from .errors import LawInputError
from .isoflop import BudgetParabola, fit_budget_parabola, fit_isoflop
from .parametric import fit_parametric


@dataclass(frozen=True)
class HoldoutResult:
    """What was held out, what the law fitted on the rest predicted, and the errors."""

    quantity: str  # what is predicted, with its unit
    held_out: str  # which runs were held out
    n_fit: int  # runs fitted on
    n_held_out: int  # runs predicted
    predicted: np.ndarray = field(repr=False)
    observed: np.ndarray = field(repr=False)
    #: Error metrics of the fitted law on the held-out runs.
    metrics: dict[str, float] = field(default_factory=dict)
    #: The same metrics for a reference law (e.g. published coefficients), when one is given.
    reference_metrics: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: what was held out and the errors."""
        text = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
        if self.reference_metrics:
            ref = ", ".join(f"{k} {v:.4g}" for k, v in self.reference_metrics.items())
            text += f" (reference law: {ref})"
        return f"{self.quantity} on {self.held_out} (fit on {self.n_fit} runs): {text}"


def _loss_metrics(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    log_err = np.log(predicted) - np.log(observed)
    rel = predicted / observed - 1.0
    return {
        "rmse_log_loss": float(np.sqrt(np.mean(log_err**2))),
        "mae_loss": float(np.mean(np.abs(predicted - observed))),
        "max_abs_relative_error": float(np.max(np.abs(rel))),
    }


def holdout_isoflop(C, N, loss) -> HoldoutResult:
    """Fit IsoFLOP profiles on all budgets but the largest with a vertex, and predict that
    budget's N_opt (non-embedding parameters) from the power law; the error is relative to the
    held-out budget's own parabola vertex. Needs 3 budgets with a vertex."""
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    labels = budget_labels(C)
    budgets = sorted(np.unique(labels[np.isfinite(labels)]), reverse=True)
    held: BudgetParabola | None = None
    for c in budgets:
        result = fit_budget_parabola(c, N[labels == c], loss[labels == c])
        if isinstance(result, BudgetParabola):
            held = result
            break
    if held is None:
        raise LawInputError("IsoFLOP hold-out: no budget has a vertex")
    rest = np.isfinite(labels) & (labels < held.budget_flops)
    try:
        fit = fit_isoflop(C[rest], N[rest], loss[rest])
    except LawInputError as err:
        raise LawInputError(
            f"IsoFLOP hold-out needs 2 smaller budgets with a vertex: {err}"
        ) from err
    predicted = np.array([fit.n_opt(held.budget_flops)])
    observed = np.array([held.n_opt])
    return HoldoutResult(
        quantity="N_opt (non-embedding parameters)",
        held_out=f"the largest budget C = {held.budget_flops:.3g} FLOPs",
        n_fit=int(rest.sum()),
        n_held_out=held.n_points,
        predicted=predicted,
        observed=observed,
        metrics={"relative_error": float(predicted[0] / observed[0] - 1.0)},
    )


def holdout_parametric(N, D, loss, C=None, **fit_kwargs) -> HoldoutResult:
    """Fit the parametric law on all runs but those of the largest budget (C FLOPs, default
    6 N D; budgets within 1% are one), and predict the held-out runs' losses (nats/token)."""
    N, D, loss = (np.asarray(v, dtype=float).ravel() for v in (N, D, loss))
    C = 6.0 * N * D if C is None else np.asarray(C, dtype=float).ravel()
    C = np.where(np.isfinite(C), C, 6.0 * N * D)
    labels = budget_labels(C)
    top = np.nanmax(labels)
    held = labels == top
    if (~held).sum() < 5:
        raise LawInputError(
            f"parametric hold-out: only {(~held).sum()} runs below the largest budget"
        )
    fit = fit_parametric(N[~held], D[~held], loss[~held], **fit_kwargs)
    predicted = np.asarray(fit.predict(N[held], D[held]), dtype=float).ravel()
    return HoldoutResult(
        quantity="loss (nats/token)",
        held_out=f"the largest budget C = {top:.3g} FLOPs",
        n_fit=int((~held).sum()),
        n_held_out=int(held.sum()),
        predicted=predicted,
        observed=loss[held],
        metrics=_loss_metrics(predicted, loss[held]),
    )


def curve_ids(N, U) -> np.ndarray:
    """Index of each run's (U, N) curve, curves sorted by U then N."""
    pairs = np.stack([np.asarray(U, float).ravel(), np.asarray(N, float).ravel()], axis=1)
    _, ids = np.unique(pairs, axis=0, return_inverse=True)  # np.unique sorts rows by U, then N
    return ids.ravel()


def holdout_data_constrained(
    N, U, epochs, loss, *, every: int = 5, reference: DataConstrainedLaw | None = None, **fit_kwargs
) -> tuple[HoldoutResult, DataConstrainedLaw]:
    """Fit eq. 14 on all (U, N) curves but every `every`-th (curves sorted by U then N; curves
    every-1, 2 every-1, ... are held out, so the split is deterministic), and predict the
    held-out curves' losses. Returns the result and the law fitted on the rest; `reference`
    (e.g. published coefficients) is scored on the same held-out runs."""
    N, U, epochs, loss = (np.asarray(v, dtype=float).ravel() for v in (N, U, epochs, loss))
    ids = curve_ids(N, U)
    held = ids % every == every - 1
    if not held.any() or held.all():
        raise LawInputError(
            f"data-constrained hold-out: {ids.max() + 1} curves cannot be split 1 in {every}"
        )
    law = fit_data_constrained(N[~held], U[~held], epochs[~held], loss[~held], **fit_kwargs)
    predicted = np.asarray(law.loss(N[held], U[held], epochs[held]), dtype=float)
    ref_metrics = {}
    if reference is not None:
        ref_pred = np.asarray(reference.loss(N[held], U[held], epochs[held]), dtype=float)
        ref_metrics = _loss_metrics(ref_pred, loss[held])
    n_curves = int(ids.max()) + 1
    result = HoldoutResult(
        quantity="validation loss (nats/token)",
        held_out=f"{int(np.unique(ids[held]).size)} of {n_curves} (U, N) curves (every {every}th)",
        n_fit=int((~held).sum()),
        n_held_out=int(held.sum()),
        predicted=predicted,
        observed=loss[held],
        metrics=_loss_metrics(predicted, loss[held]),
        reference_metrics=ref_metrics,
    )
    return result, law
