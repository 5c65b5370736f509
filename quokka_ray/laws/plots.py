"""Plots of the fitted laws, as PNG files; each function returns the Path it wrote.

Figures are built with matplotlib's object API (Figure + Agg canvas), never pyplot: no global
backend is switched and nothing is left open, so this works on a headless Ray node and inside
a notebook alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .budgets import budget_labels
from .data_constrained import DataConstrainedLaw
from .holdout import curve_ids
from .hyperparams import HYPERPARAMETERS, near_optimal_mask
from .isoflop import IsoFlopFit
from .parametric import ParametricFit
from .powerlaw import PowerLawFit
from .published import CHINCHILLA_BESIROGLU, QUOKKA_D_OPT, QUOKKA_N_OPT
from .selection import Objective, split_by_bound

PARAMS_NOTE = (
    "Chinchilla counts total parameters; quokka (and Quokka's law) count non-embedding parameters"
)


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.5):
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_isoflop(fit: IsoFlopFit | None, C, N, loss, path, *,
                 title: str = "IsoFLOP profiles", ylabel: str = "final loss") -> Path:
    """Loss against N per budget, each budget's parabola in ln N and its vertex; skipped
    budgets' runs are drawn hollow. With no fit (too few usable budgets), only the runs."""
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    labels = budget_labels(C)
    fig, ax = _figure()
    cmap = mpl.colormaps["viridis"]
    all_budgets = np.unique(labels[np.isfinite(labels)])
    colour = {c: cmap(i / max(1, all_budgets.size - 1)) for i, c in enumerate(all_budgets)}
    kept = {p.budget_flops: p for p in fit.budgets} if fit is not None else {}
    for c in all_budgets:
        members = labels == c
        parabola = kept.get(c)
        face = colour[c] if parabola else "none"
        ax.scatter(
            N[members],
            loss[members],
            s=18,
            facecolors=face,
            edgecolors=colour[c],
            label=f"{c:.2g} FLOPs" + ("" if parabola else " (skipped)"),
        )
        if parabola:
            lo, hi = (
                min(parabola.n_range[0], parabola.n_opt),
                max(parabola.n_range[1], parabola.n_opt),
            )
            grid = np.geomspace(lo / 1.2, hi * 1.2, 100)
            ax.plot(grid, parabola.loss_at(grid), color=colour[c], lw=1)
            ax.plot(
                parabola.n_opt,
                parabola.loss_opt,
                marker="*",
                ms=10,
                color=colour[c],
                markeredgecolor="black",
            )
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel(f"{ylabel} (nats/token)")
    ax.set_title(f"{title}: N_opt = {fit.k_N:.3g} C^{fit.a:.3f}" if fit is not None
                 else f"{title}: no law fitted")
    ax.legend(fontsize=7, ncols=2)
    return _save(fig, path)


def _reference_lines(ax_n, ax_d, grid: np.ndarray, references: bool) -> None:
    if not references:
        return
    n_ch, d_ch = CHINCHILLA_BESIROGLU.optimal_allocation(grid)
    ax_n.plot(grid, n_ch, "k--", lw=1, label="Chinchilla (Besiroglu refit), total params")
    ax_d.plot(grid, d_ch, "k--", lw=1, label="Chinchilla (Besiroglu refit)")
    ax_n.plot(grid, QUOKKA_N_OPT(grid), "k:", lw=1.5, label="Quokka approach 1: 0.0216 C^0.514")
    ax_d.plot(grid, QUOKKA_D_OPT(grid), "k:", lw=1.5, label="Quokka approach 1: 7.7 C^0.486")


def plot_optimal_allocation(
    path,
    *,
    isoflop: IsoFlopFit | None = None,
    parametric: ParametricFit | None = None,
    references: bool = True,
    c_range: tuple[float, float] | None = None,
    title: str = "Compute-optimal allocation",
) -> Path:
    """N_opt(C) and D_opt(C): IsoFLOP vertices and power laws, the parametric law's closed
    form, and (references=True) Chinchilla's and Quokka's published allocations."""
    if c_range is None:
        cs = [p.budget_flops for p in isoflop.budgets] if isoflop else [1e18, 1e22]
        c_range = (min(cs) / 3.0, max(cs) * 3.0)
    grid = np.geomspace(*c_range, 100)
    fig, (ax_n, ax_d) = _figure(ncols=2)
    if isoflop is not None:
        cs = np.array([p.budget_flops for p in isoflop.budgets])
        ax_n.scatter(
            cs, [p.n_opt for p in isoflop.budgets], color="C0", zorder=3, label="IsoFLOP vertices"
        )
        ax_d.scatter(
            cs, [p.d_opt for p in isoflop.budgets], color="C0", zorder=3, label="IsoFLOP vertices"
        )
        ax_n.plot(
            grid, isoflop.n_opt(grid), color="C0", label=f"fit: {isoflop.k_N:.3g} C^{isoflop.a:.3f}"
        )
        ax_d.plot(
            grid, isoflop.d_opt(grid), color="C0", label=f"fit: {isoflop.k_D:.3g} C^{isoflop.b:.3f}"
        )
    if parametric is not None:
        try:
            n_p, d_p = parametric.optimal_allocation(grid)
            ax_n.plot(grid, n_p, color="C1", label=f"parametric law: a = {parametric.a:.3f}")
            ax_d.plot(grid, d_p, color="C1", label=f"parametric law: b = {parametric.b:.3f}")
        except ValueError:
            pass  # a law with a non-positive exponent has no allocation to draw
    _reference_lines(ax_n, ax_d, grid, references)
    for ax, what in ((ax_n, "N_opt (parameters)"), (ax_d, "D_opt (tokens)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C = 6ND (FLOPs)")
        ax.set_ylabel(what)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    if references:
        # in the N panel, where the two counts differ
        ax_n.text(
            0.98,
            0.02,
            PARAMS_NOTE.replace("; ", ";\n"),
            transform=ax_n.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            style="italic",
        )
    return _save(fig, path)


def plot_isoloss(
    fit: ParametricFit,
    path,
    *,
    N=None,
    D=None,
    c_range=None,
    n_range=None,
    title: str = "Iso-loss contours",
) -> Path:
    """Contours of the parametric law's loss over (C FLOPs, N parameters), its efficient
    frontier N_opt(C), and the runs (N, D) when given."""
    if N is not None and D is not None:
        N, D = np.asarray(N, float), np.asarray(D, float)
        c_range = c_range or (float(np.min(6 * N * D)) / 10, float(np.max(6 * N * D)) * 10)
        n_range = n_range or (float(np.min(N)) / 10, float(np.max(N)) * 10)
    c_range = c_range or (1e17, 1e23)
    n_range = n_range or (1e6, 1e11)
    cs = np.geomspace(*c_range, 200)
    ns = np.geomspace(*n_range, 200)
    cc, nn = np.meshgrid(cs, ns)
    loss = fit.predict(nn, cc / (6.0 * nn))
    fig, ax = _figure()
    levels = np.quantile(loss, np.linspace(0.02, 0.9, 14))
    cont = ax.contour(cc, nn, loss, levels=np.unique(levels), cmap="viridis", linewidths=0.8)
    ax.clabel(cont, fontsize=6, fmt="%.2f")
    with contextlib.suppress(ValueError):  # no frontier when an exponent is not positive
        ax.plot(
            cs,
            fit.optimal_allocation(cs)[0],
            "r-",
            lw=1.5,
            label=f"efficient frontier N_opt ∝ C^{fit.a:.3f}",
        )
    if N is not None and D is not None:
        ax.scatter(6 * N * D, N, s=8, color="black", alpha=0.6, label="runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*c_range)
    ax.set_ylim(*n_range)
    ax.set_xlabel("compute C = 6ND (FLOPs)")
    ax.set_ylabel("non-embedding parameters N")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_data_constrained(
    law: DataConstrainedLaw,
    N,
    U,
    epochs,
    loss,
    path,
    *,
    max_curves: int = 12,
    title: str = "Loss against epochs",
) -> Path:
    """Loss against epochs for (U, N) curves (at most max_curves, evenly chosen), the law's
    prediction, and its max_epochs marked."""
    N, U, epochs, loss = (np.asarray(v, dtype=float).ravel() for v in (N, U, epochs, loss))
    ids = curve_ids(N, U)
    shown = np.unique(np.linspace(0, ids.max(), min(max_curves, ids.max() + 1)).round().astype(int))
    fig, ax = _figure(width=7.0)
    cmap = mpl.colormaps["plasma"]
    for k, cid in enumerate(shown):
        m = ids == cid
        colour = cmap(k / max(1, shown.size - 1) * 0.9)
        n, u = N[m][0], U[m][0]
        ax.scatter(epochs[m], loss[m], s=4, color=colour, alpha=0.5)
        grid = np.geomspace(max(1.0, epochs[m].min()), epochs[m].max(), 200)
        ax.plot(grid, law.loss(n, u, grid), color=colour, lw=1, label=f"U={u:.2g}, N={n:.2g}")
        e_star = law.max_epochs(n, u)
        if grid[0] <= e_star <= grid[-1]:
            ax.plot(
                e_star, law.loss(n, u, e_star), marker="v", color=colour, markeredgecolor="black"
            )
    ax.set_xscale("log")
    ax.set_xlabel("epochs (passes over U unique tokens)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{title} (triangles: max useful epochs)")
    ax.legend(fontsize=6, ncols=2)
    return _save(fig, path)


def plot_hyperparameter_laws(
    laws: dict[str, dict[str, PowerLawFit]],
    runs: dict,
    path,
    *,
    loss_column: str = "final_loss",
    budget_column: str = "budget_flops",
    near_optimal_fraction: float = 0.01,
    title: str = "Hyperparameter laws",
) -> Path:
    """batch (tokens) and peak lr against C for each kind: all runs faint, near-optimal runs
    solid, the fitted power laws as lines. laws[kind][name], runs[kind] a DataFrame."""
    fig, axes = _figure(ncols=len(HYPERPARAMETERS))
    for ax, name in zip(np.atleast_1d(axes), HYPERPARAMETERS, strict=True):
        for i, (kind, df) in enumerate(runs.items()):
            if name not in df or df.empty:
                continue
            c = (
                df[budget_column].to_numpy(float)
                if budget_column in df
                else np.full(len(df), np.nan)
            )
            if "flops" in df:
                c = np.where(np.isfinite(c), c, df["flops"].to_numpy(float))
            labels = budget_labels(c)
            near = near_optimal_mask(labels, df[loss_column].to_numpy(float), near_optimal_fraction)
            values = df[name].to_numpy(float)
            colour = f"C{i}"
            ax.scatter(labels, values, s=10, color=colour, alpha=0.2)
            ax.scatter(labels[near], values[near], s=18, color=colour, label=f"{kind} near-optimal")
            law = laws.get(kind, {}).get(name)
            finite = labels[np.isfinite(labels)]
            if law is not None and finite.size:
                grid = np.geomspace(finite.min() / 1.5, finite.max() * 1.5, 50)
                ax.plot(
                    grid, law(grid), color=colour, label=f"{kind}: {law.k:.3g} C^{law.exponent:.3f}"
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel("batch size (tokens)" if name == "batch_tokens" else "peak learning rate")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def plot_frontiers(fits: Mapping[Objective, IsoFlopFit], path, *,
                   title: str = "IsoFLOP frontiers by objective") -> Path:
    """Every objective's IsoFLOP result on one figure: N_opt against C for all (sizes are
    comparable across objectives), and the loss at each budget's vertex against C, NELBO and
    NLL objectives on one panel, surrogates on another (their losses share no scale with the
    bounds, nor with each other)."""
    bounds, surrogates = split_by_bound(fits)
    groups = [(g, name) for g, name in (
        (bounds, "minimum loss: NELBO / NLL (nats/token), comparable"),
        (surrogates, "minimum loss: SURROGATES (not NELBOs; each on its own scale)"),
    ) if g]
    fig, axes = _figure(ncols=1 + len(groups), width=5.5)
    axes = np.atleast_1d(axes)
    ax_n, loss_axes = axes[0], axes[1:]
    colour = {o: f"C{i}" for i, o in enumerate(fits)}
    for objective, fit in fits.items():
        cs = np.array([p.budget_flops for p in fit.budgets])
        grid = np.geomspace(cs.min() / 1.5, cs.max() * 1.5, 50)
        ax_n.scatter(cs, [p.n_opt for p in fit.budgets], color=colour[objective], s=14)
        ax_n.plot(grid, fit.n_opt(grid), color=colour[objective],
                  label=f"{objective.title()}: C^{fit.a:.3f}")
    for ax, (group, name) in zip(loss_axes, groups, strict=True):
        for objective in group:
            fit = fits[objective]
            order = np.argsort([p.budget_flops for p in fit.budgets])
            budgets = [fit.budgets[i] for i in order]
            ax.plot([p.budget_flops for p in budgets], [p.loss_opt for p in budgets],
                    marker="o", color=colour[objective], label=objective.title())
        ax.set_xscale("log")
        ax.set_xlabel("compute C = 6ND (FLOPs)")
        ax.set_ylabel("loss at the IsoFLOP vertex")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    ax_n.set_xscale("log")
    ax_n.set_yscale("log")
    ax_n.set_xlabel("compute C = 6ND (FLOPs)")
    ax_n.set_ylabel("N_opt (non-embedding parameters)")
    ax_n.set_title("compute-optimal size, all objectives", fontsize=9)
    ax_n.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
