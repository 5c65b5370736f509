"""The report's section for one objective: its runs, and each law fitted to them alone, as
Markdown lines, summary lines and PNG plots. Cross-objective sections are in report.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import Progress
from .budgets import budget_labels
from .data_constrained import fit_data_constrained
from .errors import LawInputError
from .holdout import holdout_isoflop, holdout_parametric
from .hyperparams import HYPERPARAMETERS, fit_hyperparameter_law, swept_budgets
from .isoflop import fit_isoflop
from .markdown import fmt, interval, table
from .parametric import fit_parametric
from .plots import (
    PARAMS_NOTE,
    plot_data_constrained,
    plot_hyperparameter_laws,
    plot_isoflop,
    plot_isoloss,
    plot_optimal_allocation,
)
from .selection import Objective, best_per_allocation, fresh_data_runs

#: Fewest runs for the 5-coefficient parametric law; fewer and it interpolates noise.
MIN_PARAMETRIC_RUNS = 10
#: Exponents beyond this are flagged: published laws have 0.1-0.7, Chinchilla's grid stops at 2.
MAX_PLAUSIBLE_EXPONENT = 2.0
#: Fewest runs for bootstrap intervals: with fewer, resamples drop whole model sizes.
MIN_BOOTSTRAP_RUNS = 20
# Errors that mean "these runs do not support this law", reported rather than raised.
SKIPPABLE = (LawInputError, ValueError, np.linalg.LinAlgError)


class ObjectiveSection:
    """Accumulates one objective's report section: Markdown, summary lines, plots, fits."""

    def __init__(
        self, objective: Objective, df: pd.DataFrame, out_dir: Path, n_bootstrap: int, seed: int,
        progress: Progress | None = None, target: str = "final_loss",
    ):
        self.objective, self.df, self.out_dir = objective, df, out_dir
        self.label = objective.label
        #: The loss column the compute-constrained laws fit (FIT_TARGETS).
        self.target = target
        self.fresh = fresh_data_runs(df)
        self.best = best_per_allocation(self.fresh, target)
        self.n_bootstrap, self.seed = n_bootstrap, seed
        #: Told of each step of a long fit, the objective's label before what is fitted.
        self.progress: Progress | None = None if progress is None else (
            lambda what, done, total: progress(f"{self.label}: {what}", done, total))
        #: Draw this objective's hyperparameter laws alone (False when a transfer plot has them).
        self.plot_hyperparameters = True
        self.md: list[str] = [
            f"## {objective.kind.upper()} runs, objective `{self.label}` ({objective.tag})",
            "",
        ]
        if objective.fields:
            self.md += [
                "kernel {}, schedule {}, loss {}, timesteps {}.".format(*objective.fields),
                "",
            ]
        loss_note = f"final_loss here is the {objective.loss_meaning}."
        if not objective.is_bound:
            flag = "Surrogate objective" if objective.fields else "Objective not recorded"
            loss_note = f"**{flag}:** {loss_note}"
        self.md += [loss_note, ""]
        self.summary: list[str] = [f"{objective.title()}: {len(df)} runs"]
        self.plots: list[Path] = []
        self.fits: dict[str, object] = {}
        self.skipped: dict[str, str] = {}

    def skip(self, law: str, reason: str) -> None:
        self.skipped[law] = reason
        self.md += [f"**{law}: skipped** — {reason}", ""]
        self.summary.append(f"  {law}: skipped ({reason})")

    def title(self, what: str) -> str:
        """A plot title naming the objective and what its loss is."""
        return f"{self.objective.title()}: {what}"

    def plot(self, name: str, make) -> None:
        path = make(self.out_dir / f"{self.label}_{name}.png")
        self.plots.append(path)
        self.md += [f"![{self.label} {name}]({path.name})", ""]

    def exact_budgets(self) -> bool:
        """Whether this objective's budgets count exact training FLOPs (D = C / F(N))."""
        rules = self.df["budget_flops_rule"].dropna().astype(str) if "budget_flops_rule" in \
            self.df else pd.Series(dtype=str)
        return bool((rules == "exact").any()) and "exact_flops_per_token" in self.df

    def n_boot(self, runs: int) -> int:
        """Bootstrap replicates for a law fitted on `runs` runs: none below MIN_BOOTSTRAP_RUNS."""
        return self.n_bootstrap if runs >= MIN_BOOTSTRAP_RUNS else 0

    def col(self, name: str, runs: str = "best") -> np.ndarray:
        """A column as floats (nan where absent) of all runs ("all"), the single-epoch runs
        ("fresh") or the best single-epoch run per (N, D) ("best")."""
        df = {"all": self.df, "fresh": self.fresh, "best": self.best}[runs]
        return df[name].to_numpy(float) if name in df else np.full(len(df), np.nan)


def data_section(k: ObjectiveSection) -> None:
    N, D, C = (k.col(c, "all") for c in ("non_embedding_params", "tokens", "budget_flops"))
    budgets = np.unique(budget_labels(C)[np.isfinite(C)])
    headers = ["runs", "single-epoch (N, D) pairs", "N range (non-embedding params)",
               "D range (tokens)", "IsoFLOP budgets"]
    row = [str(len(k.df)), str(len(k.best)), f"{fmt(np.nanmin(N))} – {fmt(np.nanmax(N))}",
           f"{fmt(np.nanmin(D))} – {fmt(np.nanmax(D))}", str(budgets.size)]
    if "lr_schedule" in k.df:
        counts = k.df["lr_schedule"].dropna().astype(str).value_counts()
        headers.append("LR schedules (runs)")
        row.append(", ".join(f"{s} ({n})" for s, n in counts.items()) or "-")
    k.md += table(headers, [row])
    k.md += [
        "The compute-constrained laws (IsoFLOP, parametric) use single-epoch runs, the best over "
        "hyperparameters at each (N, D) within this objective; the hyperparameter laws use every "
        "single-epoch run.",
        "",
    ]


def isoflop_section(k: ObjectiveSection) -> None:
    C, N, y = k.col("budget_flops"), k.col("non_embedding_params"), k.col(k.target)
    on_budget = np.isfinite(C) & np.isfinite(y)
    k.md += ["### IsoFLOP profiles (approach 1)", ""]
    ylabel = f"final loss ({k.objective.tag})"

    def draw(fit):
        k.plot("isoflop", lambda p: plot_isoflop(
            fit, C[on_budget], N[on_budget], y[on_budget], p,
            title=k.title("IsoFLOP profiles"), ylabel=ylabel))

    if not on_budget.any():
        k.skip("isoflop", "no run has a budget_flops (not an IsoFLOP study)")
        return
    flops = k.col("exact_flops_per_token")[on_budget] if k.exact_budgets() else None
    try:
        fit = fit_isoflop(C[on_budget], N[on_budget], y[on_budget], flops_per_token=flops,
                          n_bootstrap=k.n_bootstrap, seed=k.seed)
    except SKIPPABLE as err:
        k.skip("isoflop", str(err))
        draw(None)  # the runs are still worth a look: they show why no law could be fitted
        return
    k.fits["isoflop"] = fit
    per_token = "exact FLOPs per token" if flops is not None else "6N"
    rows = [[p.budget_flops, str(p.n_points), p.n_opt,
             p.budget_flops / fit.flops_per_token(p.n_opt), p.loss_opt,
             "yes" if p.vertex_inside else "no (extrapolated)"] for p in fit.budgets]
    k.md += [f"Each budget's own parabola (D_opt = C / {per_token} at its vertex):", ""]
    k.md += table(["C (FLOPs)", "runs", "N_opt", "D_opt (tokens)", "loss at vertex",
                   "vertex inside sizes run"], rows)
    for s in fit.skipped_budgets:
        in_law = s.budget_flops in fit.law_budgets
        k.md += [f"- budget C = {fmt(s.budget_flops)}: {s.reason}"
                 + ("; in the joint law" if in_law else "; left out of the law")]
    k.md += [
        "",
        f"The law: every budget's parabola with its vertex on N_opt = k_N C^a, fitted to all "
        f"{int(on_budget.sum())} runs at once ({len(fit.law_budgets)} budgets).",
        "",
        *table(
            ["law", "prefactor", "exponent", "exponent 95% CI"],
            [
                ["N_opt = k_N C^a", fit.k_N, fit.a, interval(fit.intervals, "a")],
                ["D_opt = k_D C^b", fit.k_D, fit.b, interval(fit.intervals, "b")],
            ],
        ),
        f"Intervals: {_isoflop_interval_method(fit, k.target)}",
        "",
    ]
    ci = f" (95% CI {interval(fit.intervals, 'a')})" if "a" in fit.intervals else \
        f" (no interval: {fit.interval_note})"
    k.summary.append(
        f"  IsoFLOP: N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{ci}, D_opt = {fit.k_D:.4g} C^{fit.b:.4f}"
        + (f"; budgets without a vertex of their own: {len(fit.skipped_budgets)}"
           if fit.skipped_budgets else ""))
    k.summary.append(f"  IsoFLOP fit target: {k.target}, run-to-run sd about the law "
                     f"{fit.residual_sd:.4f} nats ({fit.dof} spare runs)")
    draw(fit)
    try:
        held = holdout_isoflop(C[on_budget], N[on_budget], y[on_budget])
    except SKIPPABLE as err:
        k.md += [f"Held-out check skipped: {err}", ""]
        return
    k.fits["isoflop_holdout"] = held
    k.md += [f"Held-out: {held.describe()}", ""]
    k.summary.append(
        f"  IsoFLOP held-out: N_opt at {held.held_out}: relative error "
        f"{held.metrics['relative_error']:+.1%}"
    )


def _isoflop_interval_method(fit, target: str) -> str:
    if not fit.intervals:
        return f"none: {fit.interval_note}."
    return (f"profile likelihood of the joint fit with the F calibration of least squares "
            f"({fit.dof} spare runs; the run-to-run noise of {target} about the law, sd "
            f"{fit.residual_sd:.4g} nats, estimated from them). It assumes each budget's runs "
            "lie on a parabola in ln N with noise of one size.")


def parametric_section(k: ObjectiveSection) -> None:
    N, D, y = k.col("non_embedding_params"), k.col("tokens"), k.col(k.target)
    ok = np.isfinite(N) & np.isfinite(D) & np.isfinite(y) & (N > 0) & (D > 0) & (y > 0)
    k.md += ["### Parametric law L = E + A/N^alpha + B/D^beta (approach 3)", ""]
    sizes, datas = np.unique(N[ok]).size, np.unique(D[ok]).size
    if ok.sum() < MIN_PARAMETRIC_RUNS or sizes < 3 or datas < 3:
        k.skip("parametric", f"{ok.sum()} runs, {sizes} sizes, {datas} token counts (needs "
               f"{MIN_PARAMETRIC_RUNS} runs and 3 of each)")
        return
    n_boot = k.n_boot(int(ok.sum()))
    try:
        fit = fit_parametric(N[ok], D[ok], y[ok], n_bootstrap=n_boot, seed=k.seed,
                             progress=k.progress)
    except SKIPPABLE as err:
        k.skip("parametric", str(err))
        return
    k.fits["parametric"] = fit
    names = ("E", "A", "B", "alpha", "beta")
    k.md += table(["coefficient", "estimate", "95% CI"],
                  [[n, getattr(fit, n), interval(fit.intervals, n)] for n in names])
    if k.n_bootstrap and not n_boot:
        k.md += [f"No intervals: {ok.sum()} runs (bootstrap needs {MIN_BOOTSTRAP_RUNS}).", ""]
    elif n_boot:
        k.md += [f"Intervals: {n_boot} bootstrap replicates (seed {k.seed}).", ""]
    coefs = ", ".join(
        f"{n}={getattr(fit, n):.4g}"
        + (f" [{interval(fit.intervals, n)}]" if n in fit.intervals else "")
        for n in names
    )
    k.summary.append(f"  parametric: {coefs}")
    odd = [n for n in ("alpha", "beta") if not 0 < getattr(fit, n) <= MAX_PLAUSIBLE_EXPONENT]
    if odd:
        # Noisy or few runs can make a "cliff" (an exponent of ~10 with a prefactor of 1e100)
        # fit slightly better than a sensible law: report it, do not trust it.
        warning = (f"{' and '.join(odd)} outside (0, {MAX_PLAUSIBLE_EXPONENT:g}]: the fit is "
                   "probably degenerate (too few or too noisy runs)")
        k.md += [f"**Warning:** {warning}.", ""]
        k.summary.append(f"  parametric warning: {warning}")
    try:
        a_ci = f" (95% CI {interval(fit.intervals, 'a')})" if "a" in fit.intervals else ""
        k.md += [f"Compute-optimal: N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{a_ci}, "
                 f"D_opt = {fit.k_D:.4g} C^{fit.b:.4f}", ""]
        k.summary.append(f"  parametric allocation: N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{a_ci}")
    except ValueError as err:
        k.md += [f"No compute-optimal allocation: {err}", ""]
        k.summary.append(f"  parametric allocation: none ({err})")
    k.plot("isoloss", lambda p: plot_isoloss(fit, p, N=N[ok], D=D[ok],
                                             title=k.title("iso-loss contours")))
    try:
        held = holdout_parametric(N[ok], D[ok], y[ok], C=k.col("budget_flops")[ok], seed=k.seed)
    except SKIPPABLE as err:
        k.md += [f"Held-out check skipped: {err}", ""]
        return
    k.fits["parametric_holdout"] = held
    k.md += [f"Held-out: {held.describe()}", ""]
    k.summary.append(
        f"  parametric held-out: loss at {held.held_out}: RMSE of log loss "
        f"{held.metrics['rmse_log_loss']:.4f}, max |relative error| "
        f"{held.metrics['max_abs_relative_error']:.2%}"
    )


def allocation_section(k: ObjectiveSection) -> None:
    iso, par = k.fits.get("isoflop"), k.fits.get("parametric")
    if iso is None and par is None:
        return
    k.md += ["### Compute-optimal allocation against published laws", "", f"*{PARAMS_NOTE}.*", ""]
    k.plot("allocation", lambda p: plot_optimal_allocation(
        p, isoflop=iso, parametric=par, title=k.title("compute-optimal allocation")))


def data_constrained_section(k: ObjectiveSection) -> None:
    k.md += ["### Data-constrained law (Quokka eq. 14)", ""]
    if "unique_tokens" not in k.df or "epochs" not in k.df:
        k.skip("data_constrained", "no unique_tokens/epochs columns (not a data-constrained study)")
        return
    y, which = k.col("val_loss", "all"), "val_loss"
    if not np.isfinite(y).any():
        y, which = k.col("final_loss", "all"), "final_loss (no val_loss recorded)"
    N, U, e = (k.col(c, "all") for c in ("non_embedding_params", "unique_tokens", "epochs"))
    ok = (np.isfinite(N) & np.isfinite(U) & np.isfinite(e) & np.isfinite(y)
          & (U > 0) & (e > 0) & (y > 0))
    try:
        law = fit_data_constrained(N[ok], U[ok], e[ok], y[ok], seed=k.seed)
    except SKIPPABLE as err:
        k.skip("data_constrained", str(err))
        return
    k.fits["data_constrained"] = law
    k.md += [f"Fitted on {which}, {ok.sum()} runs.", ""]
    k.md += table(["coefficient", "estimate"], [[n, v] for n, v in law.coefficients().items()])
    k.summary.append(
        "  data-constrained: " + ", ".join(f"{n}={v:.4g}" for n, v in law.coefficients().items())
    )
    k.plot("data_constrained", lambda p: plot_data_constrained(
        law, N[ok], U[ok], e[ok], y[ok], p, title=k.title("loss against epochs")))


def hyperparameter_section(k: ObjectiveSection) -> None:
    k.md += ["### Hyperparameter laws (B_opt, lr_opt against C)", ""]
    C = k.col("budget_flops", "fresh")
    C = np.where(np.isfinite(C), C, k.col("flops", "fresh"))
    labels = budget_labels(C)
    rows = []
    for name in HYPERPARAMETERS:
        v = k.col(name, "fresh")
        swept = swept_budgets(labels, v)
        if swept.size < 2:
            k.skip(f"{name} law", f"{name} is swept at {swept.size} budget(s) (needs 2)")
            continue
        try:
            law = fit_hyperparameter_law(C, v, k.col("final_loss", "fresh"),
                                         n_bootstrap=k.n_boot(len(k.fresh)), seed=k.seed)
        except SKIPPABLE as err:
            k.skip(f"{name} law", str(err))
            continue
        k.fits[f"{name}_law"] = law
        rows.append([name, law.k, law.exponent, interval(law.intervals, "exponent")])
        k.summary.append(f"  {law.describe('C', name + '_opt')}")
    if rows:
        k.md += table(["hyperparameter", "k", "exponent", "exponent 95% CI"], rows)
        if k.plot_hyperparameters:
            laws = {n: k.fits[f"{n}_law"] for n in HYPERPARAMETERS if f"{n}_law" in k.fits}
            k.plot("hyperparameters", lambda p: plot_hyperparameter_laws(
                {k.label: laws}, {k.label: k.fresh}, p, title=k.title("hyperparameter laws")))
