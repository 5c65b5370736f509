"""The report `quokka fit` writes: every law the runs support, per kind (DLM and AR
separately), with intervals, held-out errors and plots, in Markdown; and what was skipped, why.

Input: one row per trial, with columns
    trial_name, kind ("dlm"/"ar"), non_embedding_params, tokens, flops (= 6 N D),
    budget_flops (NaN outside IsoFLOP studies), final_loss (smoothed final training loss),
    val_loss, lr, batch_tokens (tokens per step), weight_decay, [unique_tokens, epochs].
Only trial_name, kind, non_embedding_params, tokens and final_loss are required; a law whose
columns are missing or whose runs are too few is skipped with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .budgets import budget_labels
from .data_constrained import fit_data_constrained
from .errors import LawInputError
from .holdout import holdout_isoflop, holdout_parametric
from .hyperparams import (
    HYPERPARAMETERS,
    compare_transfer,
    fit_hyperparameter_law,
    swept_budgets,
)
from .isoflop import fit_isoflop
from .parametric import fit_parametric
from .plots import (
    PARAMS_NOTE,
    plot_data_constrained,
    plot_hyperparameter_laws,
    plot_isoflop,
    plot_isoloss,
    plot_optimal_allocation,
)

REQUIRED_COLUMNS = ("trial_name", "kind", "non_embedding_params", "tokens", "final_loss")
#: Fewest runs for the 5-coefficient parametric law; fewer and it interpolates noise.
MIN_PARAMETRIC_RUNS = 10
#: Exponents beyond this are flagged: published laws have 0.1-0.7, Chinchilla's grid stops at 2.
MAX_PLAUSIBLE_EXPONENT = 2.0
#: Fewest runs for bootstrap intervals: with fewer, resamples drop whole model sizes.
MIN_BOOTSTRAP_RUNS = 20
# Errors that mean "these runs do not support this law", reported rather than raised.
_SKIPPABLE = (LawInputError, ValueError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class Report:
    """What write_report wrote and found."""

    markdown_path: Path
    plot_paths: list[Path]
    #: The text to print: per kind, coefficients with intervals, N_opt exponent, held-out error.
    summary: str
    #: fits[kind][law] -> the fit object (IsoFlopFit, ParametricFit, ...), e.g. to log to MLflow.
    fits: dict[str, dict[str, object]] = field(default_factory=dict)
    #: skipped[kind][law] -> why that law was not fitted.
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)


def _g(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float | int | np.floating) and math.isfinite(x) else str(x)


def _ci(intervals: dict, name: str) -> str:
    if name not in intervals:
        return ""
    lo, hi = intervals[name]
    return f"{_g(lo)} – {_g(hi)}"


def _table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(_g(v) if not isinstance(v, str) else v for v in row) + " |"
        for row in rows
    ]
    return lines + [""]


class _Kind:
    """Accumulates one kind's report section."""

    def __init__(self, kind: str, df: pd.DataFrame, out_dir: Path, n_bootstrap: int, seed: int):
        self.kind, self.df, self.out_dir = kind, df, out_dir
        self.fresh = fresh_data_runs(df)
        self.alone = False  # the only kind in the runs
        self.best = best_per_allocation(self.fresh)
        self.n_bootstrap, self.seed = n_bootstrap, seed
        self.md: list[str] = [f"## {kind.upper()} runs", ""]
        self.summary: list[str] = []
        self.plots: list[Path] = []
        self.fits: dict[str, object] = {}
        self.skipped: dict[str, str] = {}

    def skip(self, law: str, reason: str) -> None:
        self.skipped[law] = reason
        self.md += [f"**{law}: skipped** — {reason}", ""]
        self.summary.append(f"  {law}: skipped ({reason})")

    def plot(self, name: str, make) -> None:
        path = make(self.out_dir / f"{self.kind}_{name}.png")
        self.plots.append(path)
        self.md += [f"![{self.kind} {name}]({path.name})", ""]

    def col(self, name: str, runs: str = "best") -> np.ndarray:
        """A column as floats (nan where absent) of all runs ("all"), the single-epoch runs
        ("fresh") or the best single-epoch run per (N, D) ("best")."""
        df = {"all": self.df, "fresh": self.fresh, "best": self.best}[runs]
        return df[name].to_numpy(float) if name in df else np.full(len(df), np.nan)


def fresh_data_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that saw each token once (epochs <= 1, or no epochs column): the compute-
    constrained laws assume fresh data, and a repeated-data run would drag them down."""
    if "epochs" not in df:
        return df
    return df[~(df["epochs"].to_numpy(float) > 1.0)]


def best_per_allocation(df: pd.DataFrame) -> pd.DataFrame:
    """The lowest-loss run of each (N, D): a law of N and D describes tuned runs, so runs of
    a hyperparameter sweep count once, at their best."""
    ok = df[np.isfinite(df["final_loss"].to_numpy(float))]
    if ok.empty:
        return ok
    keep = ok.groupby(["non_embedding_params", "tokens"], sort=False)["final_loss"].idxmin()
    return ok.loc[keep.to_numpy()].reset_index(drop=True)


def _data_section(k: _Kind) -> None:
    N, D, C = (k.col(c, "all") for c in ("non_embedding_params", "tokens", "budget_flops"))
    budgets = np.unique(budget_labels(C)[np.isfinite(C)])
    k.md += _table(
        [
            "runs",
            "single-epoch (N, D) pairs",
            "N range (non-embedding params)",
            "D range (tokens)",
            "IsoFLOP budgets",
        ],
        [
            [
                str(len(k.df)),
                str(len(k.best)),
                f"{_g(np.nanmin(N))} – {_g(np.nanmax(N))}",
                f"{_g(np.nanmin(D))} – {_g(np.nanmax(D))}",
                str(budgets.size),
            ]
        ],
    )
    k.md += [
        "The compute-constrained laws (IsoFLOP, parametric) use single-epoch runs, the best over "
        "hyperparameters at each (N, D); the hyperparameter laws use every single-epoch run.",
        "",
    ]


def _isoflop_section(k: _Kind) -> None:
    C, N, y = k.col("budget_flops"), k.col("non_embedding_params"), k.col("final_loss")
    on_budget = np.isfinite(C) & np.isfinite(y)
    k.md += ["### IsoFLOP profiles (approach 1)", ""]
    if not on_budget.any():
        k.skip("isoflop", "no run has a budget_flops (not an IsoFLOP study)")
        return
    try:
        # A vertex outside the sizes a budget ran is an extrapolation: leave such budgets out
        # while two or more remain, as a sweep designed around the optimum would.
        try:
            fit = fit_isoflop(C[on_budget], N[on_budget], y[on_budget],
                              n_bootstrap=k.n_bootstrap, seed=k.seed, require_vertex_inside=True)
        except _SKIPPABLE:
            fit = fit_isoflop(C[on_budget], N[on_budget], y[on_budget],
                              n_bootstrap=k.n_bootstrap, seed=k.seed)
    except _SKIPPABLE as err:
        k.skip("isoflop", str(err))
        # The runs are still worth a look: they show why no law could be fitted.
        k.plot("isoflop", lambda p: plot_isoflop(
            None, C[on_budget], N[on_budget], y[on_budget], p,
            title=f"{k.kind.upper()} IsoFLOP profiles"))
        return
    k.fits["isoflop"] = fit
    rows = [
        [
            p.budget_flops,
            str(p.n_points),
            p.n_opt,
            p.d_opt,
            p.loss_opt,
            "yes" if p.vertex_inside else "no (extrapolated)",
        ]
        for p in fit.budgets
    ]
    k.md += _table(
        [
            "C (FLOPs)",
            "runs",
            "N_opt",
            "D_opt (tokens)",
            "loss at vertex",
            "vertex inside sizes run",
        ],
        rows,
    )
    for s in fit.skipped_budgets:
        k.md += [f"- budget C = {_g(s.budget_flops)} skipped: {s.reason}"]
    boot = (
        f"{fit.n_bootstrap_ok}/{k.n_bootstrap} bootstrap replicates"
        if k.n_bootstrap
        else "no bootstrap"
    )
    k.md += [
        "",
        *_table(
            ["law", "prefactor", "exponent", "exponent 95% CI"],
            [
                ["N_opt = k_N C^a", fit.k_N, fit.a, _ci(fit.intervals, "a")],
                ["D_opt = k_D C^b", fit.k_D, fit.b, _ci(fit.intervals, "b")],
            ],
        ),
        f"Intervals: {boot}.",
        "",
    ]
    ci = f" (95% CI {_ci(fit.intervals, 'a')})" if "a" in fit.intervals else ""
    k.summary.append(
        f"  IsoFLOP: N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{ci}, D_opt = {fit.k_D:.4g} C^{fit.b:.4f}"
        + (f"; skipped budgets: {len(fit.skipped_budgets)}" if fit.skipped_budgets else "")
    )
    k.plot(
        "isoflop",
        lambda p: plot_isoflop(
            fit,
            C[on_budget],
            N[on_budget],
            y[on_budget],
            p,
            title=f"{k.kind.upper()} IsoFLOP profiles",
        ),
    )
    try:
        held = holdout_isoflop(C[on_budget], N[on_budget], y[on_budget])
    except _SKIPPABLE as err:
        k.md += [f"Held-out check skipped: {err}", ""]
        return
    k.fits["isoflop_holdout"] = held
    k.md += [f"Held-out: {held.describe()}", ""]
    k.summary.append(
        f"  IsoFLOP held-out: N_opt at {held.held_out}: relative error "
        f"{held.metrics['relative_error']:+.1%}"
    )


def _parametric_section(k: _Kind) -> None:
    N, D, y = k.col("non_embedding_params"), k.col("tokens"), k.col("final_loss")
    ok = np.isfinite(N) & np.isfinite(D) & np.isfinite(y) & (N > 0) & (D > 0) & (y > 0)
    k.md += ["### Parametric law L = E + A/N^alpha + B/D^beta (approach 3)", ""]
    sizes, datas = np.unique(N[ok]).size, np.unique(D[ok]).size
    if ok.sum() < MIN_PARAMETRIC_RUNS or sizes < 3 or datas < 3:
        k.skip(
            "parametric",
            f"{ok.sum()} runs, {sizes} sizes, {datas} token counts (needs "
            f"{MIN_PARAMETRIC_RUNS} runs and 3 of each)",
        )
        return
    n_boot = k.n_bootstrap if ok.sum() >= MIN_BOOTSTRAP_RUNS else 0
    try:
        fit = fit_parametric(N[ok], D[ok], y[ok], n_bootstrap=n_boot, seed=k.seed)
    except _SKIPPABLE as err:
        k.skip("parametric", str(err))
        return
    k.fits["parametric"] = fit
    rows = [
        [name, getattr(fit, name), _ci(fit.intervals, name)]
        for name in ("E", "A", "B", "alpha", "beta")
    ]
    k.md += _table(["coefficient", "estimate", "95% CI"], rows)
    if k.n_bootstrap and not n_boot:
        k.md += [f"No intervals: {ok.sum()} runs (bootstrap needs {MIN_BOOTSTRAP_RUNS}).", ""]
    coefs = ", ".join(
        f"{n}={getattr(fit, n):.4g}" + (f" [{_ci(fit.intervals, n)}]" if n in fit.intervals else "")
        for n in ("E", "A", "B", "alpha", "beta")
    )
    k.summary.append(f"  parametric: {coefs}")
    odd = [n for n in ("alpha", "beta") if not 0 < getattr(fit, n) <= MAX_PLAUSIBLE_EXPONENT]
    if odd:
        # Noisy or few runs can make a "cliff" (an exponent of ~10 with a prefactor of 1e100)
        # fit slightly better than a sensible law: report it, do not trust it.
        warning = (
            f"{' and '.join(odd)} outside (0, {MAX_PLAUSIBLE_EXPONENT:g}]: the fit is "
            "probably degenerate (too few or too noisy runs)"
        )
        k.md += [f"**Warning:** {warning}.", ""]
        k.summary.append(f"  parametric warning: {warning}")
    try:
        a_ci = f" (95% CI {_ci(fit.intervals, 'a')})" if "a" in fit.intervals else ""
        k.md += [
            f"Compute-optimal: N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{a_ci}, D_opt = {fit.k_D:.4g} C^{fit.b:.4f}",
            "",
        ]
        k.summary.append(f"  parametric allocation: N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{a_ci}")
    except ValueError as err:
        k.md += [f"No compute-optimal allocation: {err}", ""]
        k.summary.append(f"  parametric allocation: none ({err})")
    k.plot(
        "isoloss",
        lambda p: plot_isoloss(
            fit, p, N=N[ok], D=D[ok], title=f"{k.kind.upper()} iso-loss contours"
        ),
    )
    C = k.col("budget_flops")
    try:
        held = holdout_parametric(N[ok], D[ok], y[ok], C=C[ok])
    except _SKIPPABLE as err:
        k.md += [f"Held-out check skipped: {err}", ""]
        return
    k.fits["parametric_holdout"] = held
    k.md += [f"Held-out: {held.describe()}", ""]
    k.summary.append(
        f"  parametric held-out: loss at {held.held_out}: RMSE of log loss "
        f"{held.metrics['rmse_log_loss']:.4f}, max |relative error| "
        f"{held.metrics['max_abs_relative_error']:.2%}"
    )


def _allocation_plot(k: _Kind) -> None:
    iso, par = k.fits.get("isoflop"), k.fits.get("parametric")
    if iso is None and par is None:
        return
    k.md += ["### Compute-optimal allocation against published laws", "", f"*{PARAMS_NOTE}.*", ""]
    k.plot(
        "allocation",
        lambda p: plot_optimal_allocation(
            p, isoflop=iso, parametric=par, title=f"{k.kind.upper()} compute-optimal allocation"
        ),
    )


def _data_constrained_section(k: _Kind) -> None:
    k.md += ["### Data-constrained law (Quokka eq. 14)", ""]
    if "unique_tokens" not in k.df or "epochs" not in k.df:
        k.skip("data_constrained", "no unique_tokens/epochs columns (not a data-constrained study)")
        return
    y, which = k.col("val_loss", "all"), "val_loss"
    if not np.isfinite(y).any():
        y, which = k.col("final_loss", "all"), "final_loss (no val_loss recorded)"
    N, U, e = (k.col(c, "all") for c in ("non_embedding_params", "unique_tokens", "epochs"))
    ok = (
        np.isfinite(N)
        & np.isfinite(U)
        & np.isfinite(e)
        & np.isfinite(y)
        & (U > 0)
        & (e > 0)
        & (y > 0)
    )
    try:
        law = fit_data_constrained(N[ok], U[ok], e[ok], y[ok], seed=k.seed)
    except _SKIPPABLE as err:
        k.skip("data_constrained", str(err))
        return
    k.fits["data_constrained"] = law
    k.md += [f"Fitted on {which}, {ok.sum()} runs.", ""]
    k.md += _table(["coefficient", "estimate"], [[n, v] for n, v in law.coefficients().items()])
    k.summary.append(
        "  data-constrained: " + ", ".join(f"{n}={v:.4g}" for n, v in law.coefficients().items())
    )
    k.plot("data_constrained", lambda p: plot_data_constrained(law, N[ok], U[ok], e[ok], y[ok], p))


def _hyperparameter_section(k: _Kind) -> None:
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
            n_boot = k.n_bootstrap if len(k.fresh) >= MIN_BOOTSTRAP_RUNS else 0
            law = fit_hyperparameter_law(
                C, v, k.col("final_loss", "fresh"), n_bootstrap=n_boot, seed=k.seed
            )
        except _SKIPPABLE as err:
            k.skip(f"{name} law", str(err))
            continue
        k.fits[f"{name}_law"] = law
        rows.append([name, law.k, law.exponent, _ci(law.intervals, "exponent")])
        k.summary.append(f"  {law.describe('C', name + '_opt')}")
    if rows:
        k.md += _table(["hyperparameter", "k", "exponent", "exponent 95% CI"], rows)
        if k.alone:  # with both kinds, the transfer section plots them side by side
            laws = {n: k.fits[f"{n}_law"] for n in HYPERPARAMETERS if f"{n}_law" in k.fits}
            k.plot(
                "hyperparameters",
                lambda p: plot_hyperparameter_laws(
                    {k.kind: laws},
                    {k.kind: k.fresh},
                    p,
                    title=f"{k.kind.upper()} hyperparameter laws",
                ),
            )


def _transfer_section(
    runs: pd.DataFrame,
    out_dir: Path,
    md: list[str],
    summary: list[str],
    plots: list[Path],
    fits: dict,
) -> None:
    fresh = fresh_data_runs(runs)
    ar, dlm = fresh[fresh["kind"] == "ar"], fresh[fresh["kind"] == "dlm"]
    md += ["## AR → DLM hyperparameter transfer", ""]
    if ar.empty or dlm.empty or not all(h in runs for h in HYPERPARAMETERS):
        md += ["Skipped: needs AR and DLM runs with lr and batch_tokens.", ""]
        return
    comparison = compare_transfer(ar, dlm)
    fits.setdefault("transfer", {})["comparison"] = comparison
    rows = [
        [
            b.budget_flops,
            f"lr {_g(b.ar_best['lr'])}, batch {_g(b.ar_best['batch_tokens'])}",
            f"lr {_g(b.dlm_best['lr'])}, batch {_g(b.dlm_best['batch_tokens'])}",
            b.dlm_best_loss,
            b.dlm_loss_at_ar_optimum,
            f"{b.relative_cost:+.2%}",
        ]
        for b in comparison.budgets
    ]
    if rows:
        md += _table(
            [
                "C (FLOPs)",
                "AR optimum",
                "DLM optimum",
                "DLM best loss",
                "DLM loss at AR optimum",
                "cost",
            ],
            rows,
        )
    md += [f"**Verdict:** {comparison.verdict}", ""]
    summary.append(f"transfer: {comparison.verdict}")
    if not any(comparison.laws.values()):
        md += ["No hyperparameter law fitted (no hyperparameter swept at 2 budgets): no plot.", ""]
        return
    path = plot_hyperparameter_laws(
        comparison.laws, {"ar": ar, "dlm": dlm}, out_dir / "transfer.png"
    )
    plots.append(path)
    md += [f"![hyperparameter laws]({path.name})", ""]


def write_report(
    runs: pd.DataFrame, out_dir: Path, *, title: str, n_bootstrap: int = 200, seed: int = 0
) -> Report:
    """Fit what `runs` support, per kind, and write out_dir/report.md with PNG plots beside it.

    n_bootstrap: replicates for intervals (laws with fewer than MIN_BOOTSTRAP_RUNS runs get
    none). Raises LawInputError only when a required column is missing or there is no run.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in runs]
    if missing:
        raise LawInputError(
            f"runs lack column(s) {', '.join(missing)}; available: {', '.join(map(str, runs.columns))}"
        )
    if runs.empty:
        raise LawInputError("no runs to fit")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [
        f"# {title}",
        "",
        f"{len(runs)} runs. Units: N non-embedding parameters, D tokens, "
        "C = 6ND FLOPs, loss in nats/token (final_loss: smoothed final training loss).",
        "",
    ]
    summary, plots = [f"{title}"], []
    fits: dict[str, dict[str, object]] = {}
    skipped: dict[str, dict[str, str]] = {}
    kinds = sorted(runs["kind"].dropna().unique(), key=lambda s: (s != "dlm", s))
    for kind in kinds:
        k = _Kind(
            str(kind), runs[runs["kind"] == kind].reset_index(drop=True), out_dir, n_bootstrap, seed
        )
        k.alone = len(kinds) == 1
        k.summary.append(f"{k.kind}: {len(k.df)} runs")
        _data_section(k)
        for section in (
            _isoflop_section,
            _parametric_section,
            _allocation_plot,
            _data_constrained_section,
            _hyperparameter_section,
        ):
            section(k)
        md += k.md
        summary += k.summary
        plots += k.plots
        fits[k.kind], skipped[k.kind] = k.fits, k.skipped
    _transfer_section(runs, out_dir, md, summary, plots, fits)
    path = out_dir / "report.md"
    path.write_text("\n".join(md) + "\n")
    return Report(
        markdown_path=path, plot_paths=plots, summary="\n".join(summary), fits=fits, skipped=skipped
    )
