"""`quokka fit`: read an experiment's finished trials from MLflow, fit the laws, write the
plots and report, and log them to the sweep's parent run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quokka_ray.laws import write_report
from quokka_ray.tracking import MlflowStore

NUMERIC_COLUMNS = ("non_embedding_params", "tokens", "flops", "budget_flops", "final_loss",
                   "val_loss", "lr", "batch_tokens", "weight_decay", "unique_tokens", "epochs")


@dataclass(frozen=True)
class FitOutcome:
    trials: int
    summary: str
    markdown_path: Path
    plot_paths: list[Path]
    parent_run_id: str | None


def trial_table(store: MlflowStore, experiment_name: str) -> pd.DataFrame:
    """One row per trial (its latest finished run) with the columns the law fits read."""
    runs = store.finished_trials(experiment_name)
    if runs.empty:
        return runs
    table = pd.DataFrame({"trial_name": runs["trial_name"], "kind": runs["kind"]})
    for column in NUMERIC_COLUMNS:
        values = runs.get(column, np.nan)
        table[column] = pd.to_numeric(values, errors="coerce")  # params come back as strings
    return table


def fit_experiment(experiment_name: str, tracking_uri: str, out_dir: Path) -> FitOutcome:
    store = MlflowStore(tracking_uri)
    table = trial_table(store, experiment_name)
    if table.empty:
        raise LookupError(f"no finished trials of experiment {experiment_name!r} in {tracking_uri}")
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "trials.csv", index=False)
    report = write_report(table, out_dir, title=experiment_name)
    parent = store.latest_parent_run(experiment_name)
    if parent is not None:
        store.log_artifacts(parent, [report.markdown_path, out_dir / "trials.csv",
                                     *report.plot_paths], artifact_path="laws")
    return FitOutcome(len(table), report.summary, report.markdown_path, report.plot_paths, parent)
