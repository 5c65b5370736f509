"""Close the loop: the compute-optimal run that one objective's fitted law predicts for a
budget, the final loss it predicts for that run, and, once the run has trained, the prediction
against the actual loss.

A proposal comes from the IsoFLOP law when it was fitted, else from the parametric law (its
closed-form allocation and L(N, D)). From the IsoFLOP law, N_opt(C) and its interval come from
the joint fit's profile likelihood (isoflop_joint.py) and the run's loss from the loss law with
an irreducible floor fitted on the same runs (optimal_loss.py): a law without a floor keeps
falling and predicts too low a loss beyond the budgets run. From the parametric law, intervals
are percentiles over the bootstrap replicates' laws. The run that trains is not N_opt itself but
the model the sizing rule picks for it, with its tokens in whole batches: the caller sizes it
(laws know no model shapes) and the loss is predicted for that run. That loss is to be compared
with one run, so its interval also holds the run-to-run noise of the fitted runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .bootstrap import CONFIDENCE, percentile_interval
from .errors import LawInputError
from .isoflop import IsoFlopFit
from .markdown import fmt, table
from .optimal_loss import OptimalLossLaw, fit_optimal_loss
from .parametric import PARAM_NAMES, ParametricFit
from .selection import best_per_allocation, fresh_data_runs, split_by_objective
from .surface import IsoFlopSurface

if TYPE_CHECKING:
    from .sections import ObjectiveSection

#: The laws a proposal can come from, in the order they are preferred.
PROPOSAL_LAWS = ("isoflop", "parametric")


@dataclass(frozen=True)
class SizedRun:
    """The run that trains for a proposal: the sized model's N and its D, C = 6 N D."""

    non_embedding_params: int
    tokens: int
    shape: str
    """How the model is built, e.g. '2 layers x 64'."""
    steps: int | None = None
    """Optimizer steps it trains (None where the batch size is searched)."""


#: (objective label, N_opt, budget FLOPs) -> the run that would train.
Sizer = Callable[[str, float, float], SizedRun]


@dataclass(frozen=True)
class ProposalRequest:
    """`quokka fit --propose BUDGET`: which budget, from which law, and how to size the run."""

    budget_flops: float
    law: str | None = None
    """'isoflop' or 'parametric'; None: the IsoFLOP law where it was fitted, else parametric."""
    size: Sizer | None = None
    """None: the proposal stays at (N_opt, D_opt)."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Objective label -> the experiment file the caller writes for it (named in the report)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.budget_flops) and self.budget_flops > 0):
            raise LawInputError(f"proposal: budget must be positive FLOPs, got "
                                f"{self.budget_flops}")
        if self.law is not None and self.law not in PROPOSAL_LAWS:
            raise LawInputError(f"proposal: law must be one of {', '.join(PROPOSAL_LAWS)}, "
                                f"got {self.law!r}")


@dataclass(frozen=True)
class ComputeOptimalProposal:
    """The compute-optimal run one objective's law predicts for `budget_flops`."""

    objective: str
    law: str
    budget_flops: float
    n_opt: float
    d_opt: float
    n_opt_interval: tuple[float, float] | None
    run: SizedRun
    final_loss: float
    """Predicted final loss (nats/token) of `run`."""
    final_loss_interval: tuple[float, float] | None
    """Prediction interval for one run's final loss: the law's uncertainty and run noise."""
    residual_sd: float
    """Run-to-run noise of the fitted runs about the law (nan when none is spare)."""
    largest_fitted_flops: float
    fitted_sizes: tuple[float, float]
    fitted_runs: int
    replicates: int
    confidence: float = CONFIDENCE
    method: str = ""
    """How the intervals were computed, for the report."""

    @property
    def extrapolation(self) -> float:
        """The budget over the largest compute the law was fitted on."""
        return self.budget_flops / self.largest_fitted_flops


@dataclass(frozen=True)
class LossPrediction:
    """What a law predicted for an experiment's run (the experiment file's Prediction)."""

    fitted_experiment: str
    objective: str
    law: str
    budget_flops: float
    n_opt: float
    n_opt_interval: tuple[float, float] | None
    d_opt: float
    non_embedding_params: int
    tokens: int
    final_loss: float
    final_loss_interval: tuple[float, float] | None
    confidence: float = CONFIDENCE


def _default_run(n_opt: float, budget: float) -> SizedRun:
    n = max(1, round(n_opt))
    return SizedRun(n, max(1, round(budget / (6 * n))), "unsized")


def _parametric_laws(fit: ParametricFit, runs: dict):
    """The parametric law, its replicates (the bootstrap's coefficient rows that have an
    allocation), the residual sd, the largest compute fitted (6 N D) and the runs."""
    rows = fit.bootstrap_samples if fit.bootstrap_samples is not None else []
    draws = [ParametricFit(**dict(zip(PARAM_NAMES, row, strict=True))) for row in rows]
    draws = [d for d in draws if d.alpha > 0 and d.beta > 0 and d.A > 0 and d.B > 0]
    residuals = runs["loss"] - fit.predict(runs["N"], runs["D"])
    dof = residuals.size - len(PARAM_NAMES)
    sd = float(np.sqrt(residuals @ residuals / dof)) if dof > 0 else math.nan
    return fit, draws, sd, float(np.nanmax(6.0 * runs["N"] * runs["D"])), int(runs["N"].size)


def propose(fits: Mapping[str, object], objective: str, request: ProposalRequest, runs: dict,
            *, seed: int = 0, confidence: float = CONFIDENCE) -> ComputeOptimalProposal:
    """The proposal from one objective's fits ({'isoflop': IsoFlopFit, 'parametric': ...}).

    runs: arrays of the runs the laws were fitted on: 'C' (budget FLOPs, nan off budget), 'N',
    'D', 'loss'. Raises LawInputError naming why when no law can propose."""
    law = request.law or next((name for name in PROPOSAL_LAWS if name in fits), None)
    if law is None or law not in fits:
        raise LawInputError(f"no {law or 'IsoFLOP or parametric'} law was fitted")
    if law == "isoflop":
        return _propose_isoflop(fits[law], objective, request, runs, confidence)
    return _propose_parametric(fits[law], objective, request, runs, seed, confidence)


def _propose_isoflop(fit: IsoFlopFit, objective: str, request: ProposalRequest, runs: dict,
                     confidence: float) -> ComputeOptimalProposal:
    """N_opt from the joint IsoFLOP law with its profile interval; the run's loss from the loss
    law with a floor on the same fit (optimal_loss.py), with its prediction interval."""
    budget = request.budget_flops
    n_opt = fit.n_opt(budget)
    if not (math.isfinite(n_opt) and n_opt > 0):
        raise LawInputError(f"the isoflop law gives N_opt = {n_opt:g} at C = {budget:g}")
    run = (request.size or (lambda _, n, c: _default_run(n, c)))(objective, n_opt, budget)
    loss_law, note = _optimal_loss_law(fit)
    if loss_law is None:
        if len(fit.budgets) < 2:
            raise LawInputError(f"no loss to predict: {note}")
        # Two budgets cannot place a floor: the power law through their vertices' losses,
        # which falls for ever and so predicts too low a loss beyond them; no interval.
        surface = IsoFlopSurface.from_parabolas(fit.budgets)
        final_loss = float(surface.loss(run.non_embedding_params, budget))
        final_interval, sd = None, fit.residual_sd
        note = (f"{note}; the loss is the power law without a floor through the budgets' "
                "vertices, which predicts too low a loss beyond them, and has no interval")
    else:
        final_loss = loss_law.predict(budget, run.non_embedding_params)
        final_interval = loss_law.prediction_interval(budget, run.non_embedding_params,
                                                      confidence)
        sd = loss_law.residual_sd
    on = np.isfinite(runs["C"])
    return ComputeOptimalProposal(
        objective=objective, law="isoflop", budget_flops=budget, n_opt=n_opt,
        d_opt=fit.d_opt(budget), n_opt_interval=fit.n_opt_interval(budget), run=run,
        final_loss=final_loss, final_loss_interval=final_interval, residual_sd=sd,
        largest_fitted_flops=max(fit.law_budgets),
        fitted_sizes=(float(np.nanmin(runs["N"])), float(np.nanmax(runs["N"]))),
        fitted_runs=int(on.sum()), replicates=0, confidence=confidence,
        method=("profile likelihood of the joint IsoFLOP fit; the loss from L_opt(C) = E + K "
                f"C^-gamma (E = {fmt(loss_law.E)}, gamma = {fmt(loss_law.gamma)}) and the mean "
                "curvature, with the runs' noise" if loss_law is not None else note))


def _optimal_loss_law(fit: IsoFlopFit) -> tuple[OptimalLossLaw | None, str]:
    """The floor law on the fit, or None and why."""
    if fit.joint is None:
        return None, "no joint fit"
    try:
        return fit_optimal_loss(fit.joint), ""
    except LawInputError as err:
        return None, f"no loss prediction: {err}"


def _propose_parametric(fit: ParametricFit, objective: str, request: ProposalRequest,
                        runs: dict, seed: int, confidence: float) -> ComputeOptimalProposal:
    budget = request.budget_flops
    point, draws, sd, largest, fitted = _parametric_laws(fit, runs)
    try:
        n_opt = float(point.optimal_allocation(budget)[0])
    except ValueError as err:  # a parametric law without an allocation
        raise LawInputError(str(err)) from None
    if not (math.isfinite(n_opt) and n_opt > 0):
        raise LawInputError(f"the parametric law gives N_opt = {n_opt:g} at C = {budget:g}")
    run = (request.size or (lambda _, n, c: _default_run(n, c)))(objective, n_opt, budget)
    n, d = run.non_embedding_params, run.tokens
    # One run's loss is the law's prediction plus run-to-run noise: draw both.
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sd if math.isfinite(sd) else 0.0, len(draws))
    predicted = np.array([law_.predict(n, d) for law_ in draws]) + noise
    return ComputeOptimalProposal(
        objective=objective, law="parametric", budget_flops=budget, n_opt=n_opt,
        d_opt=budget / (6.0 * n_opt),
        n_opt_interval=percentile_interval([law_.optimal_allocation(budget)[0]
                                            for law_ in draws], confidence),
        run=run, final_loss=float(point.predict(n, d)),
        final_loss_interval=percentile_interval(predicted, confidence), residual_sd=sd,
        largest_fitted_flops=largest,
        fitted_sizes=(float(np.nanmin(runs["N"])), float(np.nanmax(runs["N"]))),
        fitted_runs=fitted, replicates=len(draws), confidence=confidence,
        method=f"percentiles of {len(draws)} bootstrap replicates' predictions, each with a "
               "draw of the runs' noise")


def describe(p: ComputeOptimalProposal) -> list[str]:
    """The proposal as Markdown lines: what the law predicts and the run that would test it."""
    pct = f"{p.confidence:.0%}"
    n_ci = f" ({pct} CI {_span(p.n_opt_interval)})" if p.n_opt_interval else ""
    lines = [
        f"{p.law} law, {p.fitted_runs} runs: N_opt = {fmt(p.n_opt)}{n_ci}, "
        f"D_opt = {fmt(p.d_opt)} tokens at C = {fmt(p.budget_flops)} FLOPs, "
        f"{fmt(p.extrapolation)}x the largest compute fitted.",
        "",
        *table(["run", "N (non-embedding)", "model", "D (tokens)", "C = 6ND",
                "predicted final loss", f"{pct} prediction interval"],
               [["proposed", p.run.non_embedding_params, p.run.shape, p.run.tokens,
                 6.0 * p.run.non_embedding_params * p.run.tokens, p.final_loss,
                 _span(p.final_loss_interval)]]),
    ]
    if p.final_loss_interval:
        noise = (f"run-to-run noise sd {fmt(p.residual_sd)}" if math.isfinite(p.residual_sd)
                 else "no run-to-run noise (no run is spare to estimate it)")
        lines += [f"Intervals: {p.method}; {noise}.", ""]
    elif p.method:
        lines += [f"No interval for the loss: {p.method}.", ""]
    else:
        lines += ["No interval for the loss: no run is spare to estimate the noise, or the runs "
                  "cannot bound the law's loss there.", ""]
    if not p.fitted_sizes[0] <= p.n_opt <= p.fitted_sizes[1]:
        lines += [f"**Extrapolated size:** N_opt lies outside the sizes fitted "
                  f"({fmt(p.fitted_sizes[0])} – {fmt(p.fitted_sizes[1])}).", ""]
    return lines


def _span(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"{fmt(interval[0])} – {fmt(interval[1])}"


def proposal_section(k: ObjectiveSection, request: ProposalRequest) -> None:
    """The proposal for one objective (an ObjectiveSection), kept in k.fits['proposal']."""
    k.md += [f"### Proposed compute-optimal run for C = {fmt(request.budget_flops)} FLOPs", ""]
    N, D, C, y = (k.col(c) for c in ("non_embedding_params", "tokens", "budget_flops",
                                     k.target))
    ok = np.isfinite(N) & np.isfinite(D) & np.isfinite(y) & (N > 0) & (D > 0)
    runs = {"N": N[ok], "D": D[ok], "C": C[ok], "loss": y[ok]}
    try:
        proposal = propose(k.fits, k.label, request, runs, seed=k.seed)
    except (LawInputError, ValueError) as err:
        k.skip("proposal", str(err))
        return
    k.fits["proposal"] = proposal
    k.md += describe(proposal)
    if k.label in request.files:
        k.md += [f"Experiment file: `{request.files[k.label]}` (`quokka run` it, then "
                 "`quokka fit` it to see the prediction against the actual loss).", ""]
    ci = _span(proposal.final_loss_interval)
    k.summary.append(
        f"  proposal ({proposal.law}) for C = {proposal.budget_flops:.3g}: N_opt = "
        f"{proposal.n_opt:.4g}, run N = {proposal.run.non_embedding_params:,} "
        f"({proposal.run.shape}), D = {proposal.run.tokens:,}; predicted final loss "
        f"{proposal.final_loss:.4f}" + (f" ({ci})" if ci else ""))


def prediction_lines(runs: pd.DataFrame, predictions: Sequence[LossPrediction]
                     ) -> tuple[list[str], list[str]]:
    """Markdown and summary lines setting each prediction beside the actual final loss of the
    best finished run of its objective (one run per (N, D), as the laws count runs)."""
    md = ["## Predicted against actual", ""]
    summary: list[str] = []
    groups = {o.label: df for o, df in split_by_objective(runs)}
    rows = []
    for p in predictions:
        df = groups.get(p.objective)
        best = best_per_allocation(fresh_data_runs(df)) if df is not None else None
        if best is None or best.empty:
            md += [f"- `{p.objective}`: no finished run to compare with the prediction.", ""]
            summary.append(f"predicted vs actual ({p.objective}): no finished run")
            continue
        for _, run in best.iterrows():
            actual, n, d = (float(run[c]) for c in ("final_loss", "non_embedding_params",
                                                    "tokens"))
            inside = ("yes" if p.final_loss_interval and
                      p.final_loss_interval[0] <= actual <= p.final_loss_interval[1]
                      else "no" if p.final_loss_interval else "no interval")
            rows.append([f"`{p.objective}`", n, d, 6.0 * n * d, p.final_loss,
                         _span(p.final_loss_interval), actual, actual - p.final_loss,
                         f"{(actual - p.final_loss) / p.final_loss:+.2%}", inside])
            summary.append(
                f"predicted vs actual ({p.objective}, N = {n:,.0f}, D = {d:,.0f}): predicted "
                f"final loss {p.final_loss:.4f}"
                + (f" ({_span(p.final_loss_interval)})" if p.final_loss_interval else "")
                + f", actual {actual:.4f} ({(actual - p.final_loss) / p.final_loss:+.2%}); "
                f"inside the interval: {inside}")
            if (n, d) != (p.non_embedding_params, p.tokens):
                md += [f"- The run (N = {fmt(n)}, D = {fmt(d)}) is not the one predicted for "
                       f"(N = {fmt(p.non_embedding_params)}, D = {fmt(p.tokens)}).", ""]
    if rows:
        pct = f"{predictions[0].confidence:.0%}"
        md += table(["objective", "N", "D (tokens)", "C = 6ND", "predicted final loss",
                     f"{pct} prediction interval", "actual final loss", "actual − predicted",
                     "relative", "inside"], rows)
    for p in predictions:
        n_ci = f" ({_span(p.n_opt_interval)})" if p.n_opt_interval else ""
        md += [f"- Predicted by the {p.law} law of experiment `{p.fitted_experiment}` "
               f"(objective `{p.objective}`) for C = {fmt(p.budget_flops)} FLOPs: N_opt = "
               f"{fmt(p.n_opt)}{n_ci}, D_opt = {fmt(p.d_opt)}."]
    return md + [""], summary
