"""`quokka fit`: read an experiment's trial runs from MLflow, keep the ones that ran to the end,
fit the laws, write the plots and report, and log them to a fit run under the sweep.

Only the trials of the sweep's plan count: runs of an older experiment of the same name (other
settings, other trial names) are never fitted with it. Trials that were stopped early (ASHA) or
failed are left out, and the report says how many. A fit can also set predictions beside the
actual losses, propose the next compute-optimal run and suggest runs (laws/proposal.py,
laws/suggest.py); files the caller writes from the report (a proposal's experiment file) are
logged with it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from quokka_ray.laws import Report, write_report
from quokka_ray.laws.bootstrap import Progress
from quokka_ray.laws.proposal import LossPrediction, ProposalRequest
from quokka_ray.laws.suggest import SuggestRequest
from quokka_ray.tracking import FitNote, MlflowStore, fit_run_name

NUMERIC_COLUMNS = ("non_embedding_params", "tokens", "flops", "budget_flops", "final_loss",
                   "val_loss", "lr", "batch_tokens", "weight_decay", "unique_tokens", "epochs",
                   "steps", "final_loss_window_steps", "exact_flops_per_token")
OBJECTIVE_COLUMNS = ("kind", "kernel", "schedule", "loss", "timesteps", "lr_schedule")
#: Text columns the fits read besides the objective's: how a budget counts FLOPs.
TEXT_COLUMNS = ("budget_flops_rule",)
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
    fits: dict[str, dict[str, object]] = field(default_factory=dict)
    """Report.fits: objective label -> law -> fit (and 'proposal', 'suggestions')."""
    written: list[Path] = field(default_factory=list)
    """Files the caller's `after` wrote from the report, logged with it."""
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    """Report.skipped: objective label -> law -> why it was not fitted."""


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
    for column in OBJECTIVE_COLUMNS + TEXT_COLUMNS:
        if column in runs:
            table[column] = runs[column].to_numpy()
    for column in NUMERIC_COLUMNS:
        values = runs[column].to_numpy() if column in runs else np.full(len(runs), np.nan)
        table[column] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
    return table


def fit_experiment(experiment_name: str, tracking_uri: str, out_dir: Path, *,
                   planned: Collection[str] | None = None, n_bootstrap: int = 200,
                   seed: int = 0, laws: Collection[str] | None = None,
                   predictions: Sequence[LossPrediction] = (),
                   propose: ProposalRequest | None = None,
                   suggest: SuggestRequest | None = None,
                   after: Callable[[Report, pd.DataFrame], list[Path]] | None = None,
                   progress: Progress | None = None, target: str = "final_loss",
                   ) -> FitOutcome:
    """`planned`: the trial names of the experiment's plan; by default those its latest sweep
    recorded in MLflow. predictions, propose, suggest: see write_report. after(report, trial
    table): writes files from the report (a proposal's experiment file); they are logged to
    the fit run with the report. progress: see write_report."""
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
                          seed=seed, laws=laws, notes=notes, predictions=predictions,
                          propose=propose, suggest=suggest, progress=progress, target=target)
    written = after(report, table) if after else []
    params = {"trials": len(table), "left_out": sum(left_out.values()),
              "n_bootstrap": n_bootstrap, "seed": seed,
              "laws": ",".join(sorted(laws)) if laws else "all", "fit_target": target}
    if propose is not None:
        params["propose_flops"] = propose.budget_flops
    if suggest is not None:
        params.update(suggest=suggest.count, suggest_target_flops=suggest.target_flops,
                      suggest_for=suggest.quantity)
    sweep_run = store.latest_sweep_run(experiment_name)
    fit_run = store.fit_run(experiment_name, sweep_run, params)
    files = [report.markdown_path, out_dir / "trials.csv", *report.plot_paths, *written]
    store.log_artifacts(fit_run, files)
    store.end_run(fit_run, "FINISHED")
    if sweep_run:  # the sweep's description says where its laws and plots are
        store.describe_sweep(sweep_run, experiment_name, FitNote(
            fit_run, fit_run_name(experiment_name), tuple(Path(f).name for f in files), str(out_dir)))
    return FitOutcome(len(table), left_out, report.summary, report.markdown_path,
                      report.plot_paths, fit_run, report.fits, written, report.skipped)


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} trial{'s' if n != 1 else ''} {LEFT_OUT.get(k, k)}"
                     for k, n in sorted(counts.items()))
