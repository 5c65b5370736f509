"""Hyperparameter laws: optimal batch size (tokens) and peak learning rate as power laws of
compute, B_opt = k_B C^x and lr_opt = k_lr C^y (DeepSeek LLM 2024's form), and the AR -> DLM
transfer check that Quokka did by grids.

Near-optimal runs: a run is near-optimal when its loss is within `near_optimal_fraction` of its
budget's best loss. DeepSeek fitted on runs within 0.25% of the best generalisation error over
fine grids; the default here, 1%, suits the coarse, noisy grids of small sweeps (with 0.25%
most budgets of a 3-point grid keep only their single best run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .bootstrap import CONFIDENCE, percentile_intervals, resample_within_groups
from .budgets import budget_labels
from .errors import LawInputError
from .powerlaw import PowerLawFit, fit_power_law

#: Loss within this fraction of a budget's best counts as near-optimal.
NEAR_OPTIMAL_FRACTION = 0.01
#: The AR optimum "transfers" when it costs a DLM at most this relative loss at every budget.
TRANSFER_TOLERANCE = 0.01
#: Hyperparameters compared between AR and DLM (DataFrame columns).
HYPERPARAMETERS = ("batch_tokens", "lr")
#: Model size column: the transfer check compares runs of the same size when it can.
SIZE_COLUMN = "non_embedding_params"


def near_optimal_mask(labels, loss, fraction: float = NEAR_OPTIMAL_FRACTION) -> np.ndarray:
    """True for runs whose loss is within `fraction` (relative) of their budget's best."""
    labels = np.asarray(labels, float)
    loss = np.asarray(loss, float)
    mask = np.zeros(loss.shape, dtype=bool)
    for c in np.unique(labels[np.isfinite(labels)]):
        members = (labels == c) & np.isfinite(loss)
        if members.any():
            mask |= members & (loss <= loss[members].min() * (1.0 + fraction))
    return mask


def swept_budgets(labels, value) -> np.ndarray:
    """The budgets at which `value` takes 2 or more distinct values."""
    labels = np.asarray(labels, float)
    value = np.asarray(value, float)
    return np.array(
        [
            c
            for c in np.unique(labels[np.isfinite(labels)])
            if np.unique(value[(labels == c) & np.isfinite(value)]).size >= 2
        ]
    )


def fit_hyperparameter_law(
    C,
    value,
    loss,
    *,
    near_optimal_fraction: float = NEAR_OPTIMAL_FRACTION,
    n_bootstrap: int = 0,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> PowerLawFit:
    """value_opt = k C^exponent, by least squares in log space over the near-optimal runs.

    C: each run's compute budget (FLOPs; budgets within 1% are one); value: the
    hyperparameter (batch in tokens, peak learning rate); loss: the run's final loss. With
    n_bootstrap > 0 runs are resampled within budgets and the near-optimal set is re-chosen.
    """
    C, value, loss = (np.asarray(v, dtype=float).ravel() for v in (C, value, loss))
    if not (C.size == value.size == loss.size):
        raise LawInputError(
            f"C, value and loss differ in length: {C.size}, {value.size}, {loss.size}"
        )
    ok = np.isfinite(C) & np.isfinite(value) & np.isfinite(loss) & (C > 0) & (value > 0)
    C, value, loss = C[ok], value[ok], loss[ok]
    labels = budget_labels(C)
    swept = swept_budgets(labels, value)
    if swept.size < 2:
        # Without a sweep the "optimum" is just the value every run used: no law to fit.
        raise LawInputError(
            f"a hyperparameter law needs the hyperparameter swept (2 or more values) at 2 or "
            f"more budgets; it is swept at {swept.size} of {np.unique(labels).size}"
        )
    mask = near_optimal_mask(labels, loss, near_optimal_fraction)
    fit = fit_power_law(labels[mask], value[mask])
    if n_bootstrap <= 0:
        return fit
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {"k": [], "exponent": []}
    for _ in range(n_bootstrap):
        idx = resample_within_groups(labels, rng)
        m = near_optimal_mask(labels[idx], loss[idx], near_optimal_fraction)
        rep = fit_power_law(labels[idx][m], value[idx][m])
        samples["k"].append(rep.k)
        samples["exponent"].append(rep.exponent)
    return PowerLawFit(
        k=fit.k,
        exponent=fit.exponent,
        n_points=fit.n_points,
        intervals=percentile_intervals(samples, confidence),
    )


@dataclass(frozen=True)
class TransferBudget:
    """One budget of the transfer check: what the AR optimum costs a DLM there."""

    budget_flops: float
    ar_best: dict[str, float]  # AR's best run's hyperparameters
    dlm_best: dict[str, float]  # DLM's best run's hyperparameters
    dlm_best_loss: float
    #: Loss of the DLM run at the AR optimum (or the nearest DLM run in log2 hyperparameters).
    dlm_loss_at_ar_optimum: float
    #: log2 distance from the AR optimum to the DLM run used (0 when the grids share it).
    distance_log2: float

    @property
    def relative_cost(self) -> float:
        """Extra DLM loss from using the AR optimum: loss at AR optimum / DLM best - 1."""
        return self.dlm_loss_at_ar_optimum / self.dlm_best_loss - 1.0


@dataclass(frozen=True)
class TransferComparison:
    """B_opt(C) and lr_opt(C) for AR and DLM side by side, and the verdict."""

    #: laws[kind][hyperparameter] -> PowerLawFit, kind in {"ar", "dlm"}; missing when skipped.
    laws: dict[str, dict[str, PowerLawFit]]
    #: "kind/hyperparameter" -> why that law was not fitted.
    skipped: dict[str, str] = field(default_factory=dict)
    budgets: list[TransferBudget] = field(default_factory=list)
    verdict: str = ""


def _budgets_of(df: pd.DataFrame, budget_column: str) -> np.ndarray:
    budgets = df[budget_column].to_numpy(float) if budget_column in df else np.full(len(df), np.nan)
    if "flops" in df:  # runs outside an IsoFLOP budget are their own budget
        budgets = np.where(np.isfinite(budgets), budgets, df["flops"].to_numpy(float))
    return budgets


def _hp_distance(a: dict[str, float], b: pd.DataFrame, names) -> np.ndarray:
    d2 = np.zeros(len(b))
    for name in names:
        d2 += (np.log2(b[name].to_numpy(float)) - np.log2(a[name])) ** 2
    return np.sqrt(d2)


def compare_transfer(
    ar_df: pd.DataFrame,
    dlm_df: pd.DataFrame,
    *,
    loss_column: str = "final_loss",
    budget_column: str = "budget_flops",
    near_optimal_fraction: float = NEAR_OPTIMAL_FRACTION,
    tolerance: float = TRANSFER_TOLERANCE,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> TransferComparison:
    """Fit B_opt(C) (tokens) and lr_opt(C) for AR and DLM runs, and measure per budget how much
    loss a DLM loses when trained with the AR optimum instead of its own.

    Frames need columns lr, batch_tokens, the loss column and budget_flops (else flops).
    Per budget, the AR optimum is the AR run of lowest loss. It is compared with the DLM runs
    of the same budget and, when there are any, the same model size (non_embedding_params):
    the DLM's best of those against the one with the AR optimum's hyperparameters, or the
    nearest in log2 (lr, batch) when the grids differ. Weight decay, when both frames have it,
    must match too when a DLM run with the AR optimum's weight decay exists.
    """
    names = [h for h in HYPERPARAMETERS if h in ar_df and h in dlm_df]
    laws: dict[str, dict[str, PowerLawFit]] = {"ar": {}, "dlm": {}}
    skipped: dict[str, str] = {}
    frames = {"ar": ar_df, "dlm": dlm_df}
    for kind, df in frames.items():
        for name in HYPERPARAMETERS:
            if name not in df:
                skipped[f"{kind}/{name}"] = f"no column {name!r}"
                continue
            try:
                laws[kind][name] = fit_hyperparameter_law(
                    _budgets_of(df, budget_column),
                    df[name],
                    df[loss_column],
                    near_optimal_fraction=near_optimal_fraction,
                    n_bootstrap=n_bootstrap,
                    seed=seed,
                )
            except LawInputError as err:
                skipped[f"{kind}/{name}"] = str(err)
    ar_b, dlm_b = _budgets_of(ar_df, budget_column), _budgets_of(dlm_df, budget_column)
    labels = budget_labels(np.concatenate([ar_b, dlm_b]))
    ar_l, dlm_l = labels[: len(ar_b)], labels[len(ar_b) :]
    rows = []
    for c in np.unique(labels[np.isfinite(labels)]):
        ar_runs = ar_df[(ar_l == c) & np.isfinite(ar_df[loss_column].to_numpy(float))]
        dlm_runs = dlm_df[(dlm_l == c) & np.isfinite(dlm_df[loss_column].to_numpy(float))]
        if ar_runs.empty or dlm_runs.empty or not names:
            continue
        ar_best = ar_runs.loc[ar_runs[loss_column].idxmin()]
        target = {n: float(ar_best[n]) for n in names}
        # Compare hyperparameters at the AR optimum's model size when the DLM ran it: across
        # sizes, a loss gap would mix the allocation question into the transfer question.
        if SIZE_COLUMN in ar_runs and SIZE_COLUMN in dlm_runs:
            same_size = dlm_runs[
                np.isclose(dlm_runs[SIZE_COLUMN].to_numpy(float), float(ar_best[SIZE_COLUMN]))
            ]
            dlm_runs = same_size if not same_size.empty else dlm_runs
        dlm_best = dlm_runs.loc[dlm_runs[loss_column].idxmin()]
        candidates = dlm_runs
        if "weight_decay" in ar_runs and "weight_decay" in dlm_runs:
            same_wd = dlm_runs[
                np.isclose(dlm_runs["weight_decay"].to_numpy(float), float(ar_best["weight_decay"]))
            ]
            candidates = same_wd if not same_wd.empty else dlm_runs
        dist = _hp_distance(target, candidates, names)
        # Of the runs nearest the AR optimum (several when sizes differ), the best one.
        nearest = np.flatnonzero(dist <= dist.min() + 1e-12)
        j = int(nearest[np.argmin(candidates[loss_column].to_numpy(float)[nearest])])
        rows.append(
            TransferBudget(
                budget_flops=float(c),
                ar_best=target,
                dlm_best={n: float(dlm_best[n]) for n in names},
                dlm_best_loss=float(dlm_best[loss_column]),
                dlm_loss_at_ar_optimum=float(candidates[loss_column].iloc[j]),
                distance_log2=float(dist[j]),
            )
        )
    return TransferComparison(
        laws=laws, skipped=skipped, budgets=rows, verdict=_verdict(rows, tolerance)
    )


def _verdict(rows: list[TransferBudget], tolerance: float) -> str:
    if not rows:
        return "no budget has both AR and DLM runs: transfer not assessed"
    costs = np.array([r.relative_cost for r in rows])
    inexact = sum(r.distance_log2 > 0 for r in rows)
    note = f" ({inexact} budget(s) used the nearest DLM run, not an exact match)" if inexact else ""
    worst, mean = costs.max(), costs.mean()
    transfers = worst <= tolerance
    return (
        f"The AR-optimal hyperparameters cost the DLM {worst:.2%} loss at worst and {mean:.2%} "
        f"on average over {len(rows)} budget(s){note}: "
        + ("within" if transfers else "beyond")
        + f" the {tolerance:.1%} tolerance, so they "
        + ("transfer." if transfers else "do not transfer.")
    )
