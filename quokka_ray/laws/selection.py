"""Which runs each law sees: the objectives a run table holds, whether an objective's
final_loss is a bound (NELBO, NLL) or a surrogate, fresh-data runs, and the best run of each
(N, D). No fitting, no rendering.

An objective is (kind, kernel, schedule, loss, timesteps): runs of different objectives are
never fitted together, and their losses are compared only when both are bounds on the same
quantity (nats/token). AR runs are one objective, "ar", whatever their diffusion columns say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Run-table columns that name a DLM objective, beside kind.
OBJECTIVE_COLUMNS = ("kernel", "schedule", "loss", "timesteps")
#: DLM objectives whose training loss is, in expectation, the negative ELBO in nats/token:
#: the masked kernel's ELBO loss (Quokka eq. 9) with t uniform (or antithetic: stratified,
#: still uniform in distribution). Everything else is a surrogate: the uniform kernel's loss,
#: MaskGIT's w = 1, the realized-masked ratio estimator, the curriculum's shifted t.
NELBO_KERNELS, NELBO_LOSSES, NELBO_TIMESTEPS = ("masked",), ("elbo",), ("uniform", "antithetic")


@dataclass(frozen=True)
class Objective:
    """One training objective of a run table. Fields other than kind are None for AR runs and
    for tables without the objective columns (the objective is then known by its kind only)."""

    kind: str
    kernel: str | None = None
    schedule: str | None = None
    loss: str | None = None
    timesteps: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(
            v for v in (self.kernel, self.schedule, self.loss, self.timesteps) if v is not None
        )

    @property
    def label(self) -> str:
        """File-name-safe and unambiguous: every known field, in a fixed order, joined by "-"
        ("dlm-masked-linear-elbo-uniform", "ar", "dlm" for a table without objective columns)."""
        return "-".join(_safe(v) for v in (self.kind, *self.fields))

    @property
    def is_bound(self) -> bool:
        """True when final_loss bounds the same quantity for every such objective: AR's exact
        NLL, or a masked-diffusion NELBO. False for a surrogate or an unrecorded objective."""
        if self.kind == "ar":
            return True
        return (
            self.kind == "dlm"
            and self.kernel in NELBO_KERNELS
            and self.loss in NELBO_LOSSES
            and self.timesteps in NELBO_TIMESTEPS
        )

    @property
    def loss_meaning(self) -> str:
        """What final_loss is for this objective, for headings and legends."""
        if self.kind == "ar":
            return "exact NLL, nats/token"
        if self.is_bound:
            return "NELBO, nats/token (an upper bound on the NLL)"
        if not self.fields:
            return "training loss of an unrecorded objective: not known to be an NELBO"
        return "surrogate training loss, not an NELBO: compare it only within this objective"

    @property
    def tag(self) -> str:
        """Short tag for plot titles: "NLL", "NELBO", "surrogate" or "unrecorded objective"."""
        if self.kind == "ar":
            return "NLL"
        if self.is_bound:
            return "NELBO"
        return "surrogate" if self.fields else "unrecorded objective"

    def title(self) -> str:
        """The label with what its loss is, e.g. "dlm-uniform-linear-elbo-uniform (surrogate)"."""
        return f"{self.label} ({self.tag})"


def _safe(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(value)) or "_"


def _value(row_value) -> str:
    if row_value is None or (isinstance(row_value, float) and np.isnan(row_value)):
        return "unrecorded"
    return str(row_value)


def objective_of(row: pd.Series | dict, columns: Iterable[str] = OBJECTIVE_COLUMNS) -> Objective:
    """The objective of one run; `columns` are the objective columns the table has (all of
    OBJECTIVE_COLUMNS, or none: a table lacking any of them is split by kind alone)."""
    kind = str(row["kind"])
    columns = tuple(columns)
    if kind == "ar" or columns != OBJECTIVE_COLUMNS:
        return Objective(kind)
    return Objective(kind, *(_value(row[c]) for c in OBJECTIVE_COLUMNS))


def objective_columns(runs: pd.DataFrame) -> tuple[str, ...]:
    """OBJECTIVE_COLUMNS when the table has all of them, else () (split by kind alone)."""
    return OBJECTIVE_COLUMNS if all(c in runs for c in OBJECTIVE_COLUMNS) else ()


def split_by_objective(runs: pd.DataFrame) -> list[tuple[Objective, pd.DataFrame]]:
    """The runs of each objective, DLM first, bounds before surrogates, then by label."""
    columns = objective_columns(runs)
    runs = runs[runs["kind"].notna()]
    objectives = [objective_of(row, columns) for _, row in runs.iterrows()]
    groups: dict[Objective, list[int]] = {}
    for i, objective in enumerate(objectives):
        groups.setdefault(objective, []).append(i)
    order = sorted(groups, key=lambda o: (o.kind != "dlm", not o.is_bound, o.kind, o.label))
    return [(o, runs.iloc[groups[o]].reset_index(drop=True)) for o in order]


def split_by_bound(objectives: Iterable[Objective]) -> tuple[list[Objective], list[Objective]]:
    """(bounds, surrogates): objectives whose losses share one axis (NELBO and NLL, nats/token)
    and those whose losses must each stay on their own scale (surrogates, unrecorded)."""
    objectives = list(objectives)
    return [o for o in objectives if o.is_bound], [o for o in objectives if not o.is_bound]


def fresh_data_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that saw each token once (epochs <= 1, or no epochs column): the compute-
    constrained laws assume fresh data, and a repeated-data run would drag them down."""
    if "epochs" not in df:
        return df
    return df[~(df["epochs"].to_numpy(float) > 1.0)]


def objective_labels(runs: pd.DataFrame) -> np.ndarray:
    """Each run's objective label (see Objective.label)."""
    columns = objective_columns(runs)
    return np.array([objective_of(row, columns).label for _, row in runs.iterrows()], dtype=object)


def best_per_allocation(df: pd.DataFrame, target: str = "final_loss") -> pd.DataFrame:
    """The lowest-loss run (by the `target` column) of each (objective, N, D): a law of N and D
    describes tuned runs, so runs of a hyperparameter sweep count once, at their best; runs of
    different objectives are never compared (their losses are on different scales)."""
    if target not in df:
        return df.iloc[:0].reset_index(drop=True)
    ok = df[np.isfinite(df[target].to_numpy(float))]
    if ok.empty:
        return ok.reset_index(drop=True)
    keys = ok.assign(_objective=objective_labels(ok))
    keep = keys.groupby(["_objective", "non_embedding_params", "tokens"], sort=False)[
        target
    ].idxmin()
    return ok.loc[keep.to_numpy()].reset_index(drop=True)
