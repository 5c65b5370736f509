"""The report `quokka fit` writes: every law the runs support, per objective (each fitted on
its own runs), with intervals, held-out errors and plots, in Markdown; the objectives'
frontiers side by side; AR -> DLM transfer; and what was skipped, why.

Input: one row per trial, with columns
    trial_name, kind ("dlm"/"ar"), non_embedding_params, tokens, flops (= 6 N D),
    budget_flops (NaN outside IsoFLOP studies), final_loss (smoothed final training loss),
    val_loss, lr, batch_tokens (tokens per step), weight_decay, [unique_tokens, epochs],
    [kernel, schedule, loss, timesteps] (the DLM objective), [final_loss_window_steps,
    lr_schedule].
Only trial_name, kind, non_embedding_params, tokens and final_loss are required; without the
objective columns runs are split by kind alone. A law whose columns are missing or whose runs
are too few is skipped with the reason. Which runs each law sees is decided in selection.py;
each objective's section is written by sections.py.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import Progress
from .errors import LawInputError
from .hyperparams import HYPERPARAMETERS, TransferComparison, compare_transfer
from .isoflop import IsoFlopFit
from .markdown import fmt, table
from .plots import plot_frontiers, plot_hyperparameter_laws
from .proposal import LossPrediction, ProposalRequest, prediction_lines, proposal_section
from .sections import (
    MIN_BOOTSTRAP_RUNS,
    ObjectiveSection,
    allocation_section,
    data_constrained_section,
    data_section,
    hyperparameter_section,
    isoflop_section,
    parametric_section,
)
from .selection import Objective, fresh_data_runs, split_by_bound, split_by_objective
from .suggest import SuggestRequest, suggestion_section

#: The loss columns the compute-constrained laws can fit (Experiment.fit_target).
FIT_TARGETS = ("final_loss", "val_loss")
REQUIRED_COLUMNS = ("trial_name", "kind", "non_embedding_params", "tokens", "final_loss")
#: The laws write_report can be restricted to (its `laws` argument, `quokka fit --law`).
LAW_NAMES = ("isoflop", "parametric", "data-constrained", "hyperparameters")
_SECTIONS = {
    "isoflop": isoflop_section,
    "parametric": parametric_section,
    "data-constrained": data_constrained_section,
    "hyperparameters": hyperparameter_section,
}


@dataclass(frozen=True)
class Report:
    """What write_report wrote and found."""

    markdown_path: Path
    plot_paths: list[Path]
    #: The text to print: per objective, coefficients with intervals, N_opt exponent, held-out.
    summary: str
    #: fits[label][law] -> the fit object (IsoFlopFit, ParametricFit, ...), e.g. to log to
    #: MLflow; label is the objective's (Objective.label, e.g. "dlm-masked-linear-elbo-uniform").
    fits: dict[str, dict[str, object]] = field(default_factory=dict)
    #: skipped[label][law] -> why that law was not fitted.
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    #: label -> the objective, in the report's order.
    objectives: dict[str, Objective] = field(default_factory=dict)
    #: DLM objective label -> the AR -> DLM hyperparameter transfer check against AR.
    transfer: dict[str, TransferComparison] = field(default_factory=dict)
    #: The laws fitted (LAW_NAMES, or the subset asked for).
    laws: tuple[str, ...] = LAW_NAMES
    #: The loss column the compute-constrained laws fit (FIT_TARGETS).
    target: str = "final_loss"


def _check_laws(laws: Collection[str] | None) -> tuple[str, ...]:
    if laws is None:
        return LAW_NAMES
    if isinstance(laws, str):
        laws = [laws]
    unknown = sorted(set(laws) - set(LAW_NAMES))
    if unknown:
        raise LawInputError(f"unknown law(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(LAW_NAMES)}")
    return tuple(n for n in LAW_NAMES if n in laws)


def _smoothing_note(runs: pd.DataFrame) -> str:
    """What final_loss is, with the smoothing window when the runs recorded it."""
    steps = (pd.to_numeric(runs["final_loss_window_steps"], errors="coerce").to_numpy(float)
             if "final_loss_window_steps" in runs else np.array([]))
    steps = steps[np.isfinite(steps)]
    if not steps.size:
        return "final_loss: smoothed final training loss"
    lo, hi = int(steps.min()), int(steps.max())
    reach = f"{lo} steps" if lo == hi else f"{lo}–{hi} steps (min–max across runs)"
    return f"final_loss: training loss smoothed over the last {reach}"


def _frontier_section(fits: dict[Objective, IsoFlopFit], out_dir: Path, md: list[str],
                      plots: list[Path]) -> None:
    if len(fits) < 2:
        return
    bounds, surrogates = split_by_bound(fits)
    md += ["## IsoFLOP frontiers side by side", "",
           "N_opt(C) of every objective on one axis (model sizes are comparable). The loss at "
           "each budget's vertex is drawn for NELBO and NLL objectives on one panel; surrogate "
           "losses are on a separate panel, never on an axis with a bound.", ""]
    rows = [[f"`{o.label}`", o.tag, "NELBO / NLL" if o in bounds else "surrogate",
             fits[o].k_N, fits[o].a] for o in (*bounds, *surrogates)]
    md += table(["objective", "loss", "loss panel", "k_N", "a (N_opt = k_N C^a)"], rows)
    path = plot_frontiers(fits, out_dir / "frontiers.png")
    plots.append(path)
    md += [f"![IsoFLOP frontiers]({path.name})", ""]


def _transfer_section(groups: list[tuple[Objective, pd.DataFrame]], out_dir: Path,
                      md: list[str], summary: list[str], plots: list[Path],
                      transfer: dict[str, TransferComparison], n_bootstrap: int,
                      seed: int) -> None:
    ar = [fresh_data_runs(df) for o, df in groups if o.kind == "ar"]
    dlms = [(o, fresh_data_runs(df)) for o, df in groups if o.kind == "dlm"]
    md += ["## AR → DLM hyperparameter transfer", ""]
    has_columns = all(all(h in df for h in HYPERPARAMETERS) for _, df in groups)
    if not ar or not dlms or not has_columns:
        md += ["Skipped: needs AR and DLM runs with lr and batch_tokens.", ""]
        return
    ar_runs = ar[0]
    dlms = [(o, df) for o, df in dlms if not df.empty]
    if ar_runs.empty or not dlms:
        md += ["Skipped: needs single-epoch AR and DLM runs.", ""]
        return
    if len(dlms) > 1:
        md += [f"AR is compared with each of the {len(dlms)} DLM objectives separately: a DLM "
               "loss is compared only with runs of its own objective.", ""]
    for objective, dlm_runs in dlms:
        n_boot = n_bootstrap if min(len(ar_runs), len(dlm_runs)) >= MIN_BOOTSTRAP_RUNS else 0
        comparison = compare_transfer(ar_runs, dlm_runs, n_bootstrap=n_boot, seed=seed)
        transfer[objective.label] = comparison
        md += [f"### AR vs `{objective.label}` ({objective.tag})", ""]
        if not objective.is_bound:
            md += [f"**Surrogate objective:** the DLM losses below are its {objective.tag} "
                   "loss; the cost compares them only with each other.", ""]
        rows = [[b.budget_flops,
                 f"lr {fmt(b.ar_best['lr'])}, batch {fmt(b.ar_best['batch_tokens'])}",
                 f"lr {fmt(b.dlm_best['lr'])}, batch {fmt(b.dlm_best['batch_tokens'])}",
                 b.dlm_best_loss, b.dlm_loss_at_ar_optimum, f"{b.relative_cost:+.2%}"]
                for b in comparison.budgets]
        if rows:
            md += table(["C (FLOPs)", "AR optimum", "DLM optimum", "DLM best loss",
                         "DLM loss at AR optimum", "cost"], rows)
        md += [f"**Verdict:** {comparison.verdict}", ""]
        summary.append(f"transfer AR -> {objective.title()}: {comparison.verdict}")
        if not any(comparison.laws.values()):
            md += ["No hyperparameter law fitted (no hyperparameter swept at 2 budgets): "
                   "no plot.", ""]
            continue
        laws = {"ar": comparison.laws["ar"], objective.label: comparison.laws["dlm"]}
        path = plot_hyperparameter_laws(
            laws, {"ar": ar_runs, objective.label: dlm_runs},
            out_dir / f"transfer_{objective.label}.png",
            title=f"Hyperparameter laws: AR (NLL) vs {objective.title()}")
        plots.append(path)
        md += [f"![hyperparameter laws, AR vs {objective.label}]({path.name})", ""]


def write_report(
    runs: pd.DataFrame,
    out_dir: Path,
    *,
    title: str,
    n_bootstrap: int = 200,
    seed: int = 0,
    notes: Sequence[str] = (),
    laws: Collection[str] | None = None,
    predictions: Sequence[LossPrediction] = (),
    propose: ProposalRequest | None = None,
    suggest: SuggestRequest | None = None,
    progress: Progress | None = None,
    target: str = "final_loss",
) -> Report:
    """Fit what `runs` support, per objective, and write out_dir/report.md with PNG plots.

    n_bootstrap: replicates for intervals (laws with fewer than MIN_BOOTSTRAP_RUNS runs get
    none); seed: of the bootstrap and the fits' random starts. notes: lines from the caller,
    shown near the top (e.g. which trials were left out). laws: fit only these of LAW_NAMES
    (None: all). predictions: what a law predicted for these runs, set beside their actual
    loss at the top. propose: add each objective's proposed compute-optimal run for a budget
    (fits[label]["proposal"]); suggest: the runs that would most narrow the law's
    extrapolation (fits[label]["suggestions"]). progress: told (what, done, total) of each
    step of the long fits (the parametric law's starts and bootstrap replicates). Raises LawInputError only when a required
    column is missing, there is no run, or a law name is unknown.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in runs]
    if missing:
        raise LawInputError(f"runs lack column(s) {', '.join(missing)}; available: "
                            f"{', '.join(map(str, runs.columns))}")
    if runs.empty:
        raise LawInputError("no runs to fit")
    chosen = _check_laws(laws)
    if target not in FIT_TARGETS:
        raise LawInputError(f"fit target must be one of {', '.join(FIT_TARGETS)}, got {target!r}")
    if target not in runs or not np.isfinite(runs[target].to_numpy(float)).any():
        raise LawInputError(f"no run recorded {target}, the loss the laws are to fit")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = split_by_objective(runs)
    md = [f"# {title}", ""]
    md += [f"- {line}" for line in notes] + ([""] if notes else [])
    md += [
        f"{len(runs)} runs, {len(groups)} objective(s): "
        + ", ".join(f"`{o.label}` ({o.tag})" for o, _ in groups) + ". "
        "Each objective is fitted on its own runs. Units: N non-embedding parameters, "
        f"D tokens, C = 6ND FLOPs, loss in nats/token ({_smoothing_note(runs)}).",
        "",
        f"The IsoFLOP and parametric laws fit `{target}`"
        + (" (the validation loss: the same held-out sequences and evaluation noise for every "
           "run)." if target == "val_loss" else " (the smoothed final training loss, as the "
                                                  "paper)."),
        "",
    ]
    if chosen != LAW_NAMES:
        md += [f"Laws fitted: {', '.join(chosen)} (the others were not requested).", ""]
    summary, plots = [title, *notes], []
    if predictions:
        checked_md, checked = prediction_lines(runs, predictions)
        md += checked_md
        summary += checked
    fits: dict[str, dict[str, object]] = {}
    skipped: dict[str, dict[str, str]] = {}
    kinds = {o.kind for o, _ in groups}
    for objective, df in groups:
        k = ObjectiveSection(objective, df, out_dir, n_bootstrap, seed, progress, target)
        k.plot_hyperparameters = kinds != {"ar", "dlm"}  # else the transfer plots show them
        data_section(k)
        for name in chosen:
            _SECTIONS[name](k)
            if name == "parametric" or (name == "isoflop" and "parametric" not in chosen):
                allocation_section(k)
        if propose is not None:
            proposal_section(k, propose)
        if suggest is not None:
            suggestion_section(k, suggest)
        md += k.md
        summary += k.summary
        plots += k.plots
        fits[k.label], skipped[k.label] = k.fits, k.skipped
    objectives = {o.label: o for o, _ in groups}
    isoflop = {objectives[label]: f["isoflop"] for label, f in fits.items() if "isoflop" in f}
    _frontier_section(isoflop, out_dir, md, plots)
    transfer: dict[str, TransferComparison] = {}
    if "hyperparameters" in chosen:
        _transfer_section(groups, out_dir, md, summary, plots, transfer, n_bootstrap, seed)
    path = out_dir / "report.md"
    path.write_text("\n".join(md) + "\n")
    return Report(markdown_path=path, plot_paths=plots, summary="\n".join(summary), fits=fits,
                  skipped=skipped, objectives=objectives, transfer=transfer, laws=chosen,
                  target=target)
