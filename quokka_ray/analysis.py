"""`quokka fit`: read an experiment's trial runs from MLflow, keep the ones that ran to the end,
fit the laws, write the plots and report, and log them to a fit run under the sweep.

Only the trials of the sweep's plan count: runs of an older experiment of the same name (other
settings, other trial names) are never fitted with it. Trials that were stopped early (ASHA) or
failed are left out, and the report says how many."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quokka_ray.laws import write_report
from quokka_ray.tracking import MlflowStore

NUMERIC_COLUMNS = ("non_embedding_params", "tokens", "flops", "budget_flops", "final_loss",
                   "val_loss", "lr", "batch_tokens", "weight_decay", "unique_tokens", "epochs",
                   "steps", "final_loss_window_steps")
OBJECTIVE_COLUMNS = ("kind", "kernel", "schedule", "loss", "timesteps", "lr_schedule")
LEFT_OUT = {"stopped_early": "stopped early by ASHA", "failed": "failed",
            "diverged": "diverged (loss not finite)",
            "running": "still running (or interrupted)", "killed": "stopped before the end"}


@dataclass(frozen=True)
class FitOutcome:
    trials: int
    left_out: dict[str, int]
    """Trials not fitted, by how they ended (stopped_early, failed, ...)."""
    summary: str
    markdown_path: Path
    plot_paths: list[Path]
    fit_run_id: str


def in_plan(runs: pd.DataFrame, planned: Collection[str] | None) -> pd.DataFrame:
    """The runs of the planned trials; a searched trial's runs are named `<trial>-<sample>`."""
    if planned is None or runs.empty:
        return runs
    names = set(planned)
    keep = [n in names or n.rsplit("-", 1)[0] in names for n in runs["trial_name"]]
    return runs[keep]


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run with the columns the law fits read (params come back as strings)."""
    table = pd.DataFrame({"trial_name": runs["trial_name"].to_numpy()})
    for column in OBJECTIVE_COLUMNS:
        if column in runs:
            table[column] = runs[column].to_numpy()
    for column in NUMERIC_COLUMNS:
        values = runs[column].to_numpy() if column in runs else np.nan
        table[column] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
    return table


def fit_experiment(experiment_name: str, tracking_uri: str, out_dir: Path, *,
                   planned: Collection[str] | None = None, n_bootstrap: int = 200,
                   seed: int = 0, laws: Collection[str] | None = None) -> FitOutcome:
    """`planned`: the trial names of the experiment's plan; by default those its latest sweep
    recorded in MLflow."""
    store = MlflowStore(tracking_uri)
    if planned is None:
        recorded = store.sweep_plan(experiment_name)
        planned = recorded["trials"].keys() if recorded else None
    runs = in_plan(store.trial_runs(experiment_name), planned)
    if runs.empty:
        raise LookupError(f"no trial runs of experiment {experiment_name!r} in {tracking_uri}")
    done = (runs["status"] == "FINISHED") & (runs["outcome"] == "finished")
    left_out = runs.loc[~done, "outcome"].value_counts().to_dict()
    if not done.any():
        raise LookupError(f"no trial of experiment {experiment_name!r} ran to the end "
                          f"({_describe(left_out)})")
    notes = [f"Left out {_describe(left_out)}: the laws use only trials that ran to the end."] \
        if left_out else []
    table = trial_table(runs[done])
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "trials.csv", index=False)
    report = write_report(table, out_dir, title=experiment_name, n_bootstrap=n_bootstrap,
                          seed=seed, laws=laws, notes=notes)
    fit_run = store.fit_run(experiment_name, store.latest_sweep_run(experiment_name), {
        "trials": len(table), "left_out": sum(left_out.values()), "n_bootstrap": n_bootstrap,
        "seed": seed, "laws": ",".join(sorted(laws)) if laws else "all"})
    store.log_artifacts(fit_run, [report.markdown_path, out_dir / "trials.csv",
                                  *report.plot_paths])
    store.end_run(fit_run, "FINISHED")
    return FitOutcome(len(table), left_out, report.summary, report.markdown_path,
                      report.plot_paths, fit_run)


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} trial{'s' if n != 1 else ''} {LEFT_OUT.get(k, k)}"
                     for k, n in sorted(counts.items()))
