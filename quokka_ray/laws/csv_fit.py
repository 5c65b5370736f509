"""Fit one law to any table of runs in a CSV file, such as published data, without an
experiment or MLflow (what `quokka fit --csv` runs; its flags are in commands/fit_args.py).

Columns default to quokka's own run table (non_embedding_params, tokens, budget_flops,
final_loss, unique_tokens, epochs); other files name theirs. For parametric, D comes from
d_column, else from c_column as D = C / (6 N) FLOPs. The reference files
(reference/README.md says where they come from):

  fit_csv(reference_csv("chinchilla_svg_extracted_data.csv"), "parametric",
          columns={"n": "Model Size", "c": "Training FLOP", "loss": "loss"}, drop_highest=5)
  fit_csv(reference_csv("quokka_isoflop_points.csv"), "isoflop",
          columns={"c": "C_flops", "n": "N_params_plot", "loss": "final_train_loss_smoothed"})
  fit_csv(reference_csv("quokka_data_constrained_curves.csv"), "data-constrained",
          columns={"n": "params", "u": "unique_tokens", "epochs": "epochs",
                   "loss": "final_val_loss"})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import Progress
from .data_constrained import fit_data_constrained
from .errors import LawInputError
from .isoflop import fit_isoflop
from .parametric import fit_parametric
from .plots import plot_data_constrained, plot_isoflop, plot_isoloss, plot_optimal_allocation

CSV_LAWS = ("parametric", "isoflop", "data-constrained")
#: Column roles -> quokka's own column names, used for roles the caller does not name.
DEFAULT_COLUMNS = {
    "n": "non_embedding_params",
    "d": "tokens",
    "c": "budget_flops",
    "loss": "final_loss",
    "u": "unique_tokens",
    "epochs": "epochs",
}


@dataclass(frozen=True)
class CsvFit:
    """What fit_csv fitted and wrote."""

    law: str
    path: Path
    #: Rows fitted (after drop_highest).
    runs: int
    #: The fit object: ParametricFit, IsoFlopFit or DataConstrainedLaw.
    fit: object
    #: Printable lines: coefficients with intervals, allocation, skipped budgets.
    lines: list[str]
    #: Files written to out_dir (fit.json, then the plots); empty without out_dir.
    written: list[Path] = field(default_factory=list)


def _column(df: pd.DataFrame, path: Path, name: str) -> np.ndarray:
    if name not in df.columns:
        raise LawInputError(
            f"{path}: no column {name!r}; available columns: {', '.join(map(str, df.columns))}"
        )
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(float)
    if not np.isfinite(values).any():
        raise LawInputError(f"{path}: column {name!r} has no numeric value")
    return values


def _ci_text(intervals: dict, name: str, fmt: str = ".4g") -> str:
    if name not in intervals:
        return ""
    lo, hi = intervals[name]
    return f"  95% CI [{lo:{fmt}}, {hi:{fmt}}]"


def _fit_parametric(col, columns, n_bootstrap, seed, progress=None):
    N, y = col("n"), col("loss")
    # D from tokens, or from compute as D = C / (6 N) when only a C column is named
    D = col("d") if "d" in columns or "c" not in columns else col("c") / (6.0 * N)
    fit = fit_parametric(N, D, y, n_bootstrap=n_bootstrap, seed=seed, progress=progress)
    lines = [
        f"{n} = {getattr(fit, n):.6g}{_ci_text(fit.intervals, n)}"
        for n in ("E", "A", "B", "alpha", "beta")
    ]
    try:
        lines.append(f"N_opt = {fit.k_N:.4g} C^{fit.a:.4f}, D_opt = {fit.k_D:.4g} C^{fit.b:.4f}")
    except ValueError as err:
        lines.append(f"no compute-optimal allocation: {err}")
    return fit, lines, lambda out: [plot_isoloss(fit, out / "parametric.png", N=N, D=D)]


def _fit_isoflop(col, n_bootstrap, seed):
    C, N, y = col("c"), col("n"), col("loss")
    fit = fit_isoflop(C, N, y, n_bootstrap=n_bootstrap, seed=seed)
    lines = [
        f"N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{_ci_text(fit.intervals, 'a', '.4f')}",
        f"D_opt = {fit.k_D:.4g} C^{fit.b:.4f}",
        f"budgets with a vertex: {len(fit.budgets)}",
    ]
    lines += [f"skipped budget C = {s.budget_flops:.3g}: {s.reason}" for s in fit.skipped_budgets]
    return fit, lines, lambda out: [
        plot_isoflop(fit, C, N, y, out / "isoflop.png"),
        plot_optimal_allocation(out / "allocation.png", isoflop=fit),
    ]


def _fit_data_constrained(col, seed):
    N, U, e, y = col("n"), col("u"), col("epochs"), col("loss")
    law = fit_data_constrained(N, U, e, y, seed=seed)
    lines = [f"{n} = {v:.6g}" for n, v in law.coefficients().items()]
    return law, lines, lambda out: [
        plot_data_constrained(law, N, U, e, y, out / "data-constrained.png")
    ]


def _coefficients(fit) -> dict:
    if hasattr(fit, "coefficients"):
        out = fit.coefficients()
    else:
        out = {n: getattr(fit, n) for n in ("a", "b", "k_N", "k_D")}
    intervals = getattr(fit, "intervals", {}) or {}
    return {"coefficients": out, "intervals": {k: list(v) for k, v in intervals.items()}}


def fit_csv(
    path: Path | str,
    law: str = "parametric",
    *,
    columns: Mapping[str, str] | None = None,
    drop_highest: int = 0,
    n_bootstrap: int = 0,
    seed: int = 0,
    out_dir: Path | str | None = None,
    progress: Progress | None = None,
) -> CsvFit:
    """Fit `law` (one of CSV_LAWS) to the runs in CSV file `path`.

    columns: role -> column name, roles "n" (non-embedding parameters), "d" (tokens), "c"
    (FLOPs, the IsoFLOP budget), "loss", "u" (unique tokens), "epochs"; unnamed roles use
    DEFAULT_COLUMNS. drop_highest leaves out that many runs of highest loss (Besiroglu et al.
    dropped 5). n_bootstrap replicates give 95% intervals (parametric, isoflop); seed seeds
    them and the starts. With out_dir, writes out_dir/fit.json and the law's plots.
    progress: told of each step of the parametric fit (starts, replicates).
    Raises LawInputError for a missing file, column or law, or runs that do not fit.
    """
    path = Path(path)
    if law not in CSV_LAWS:
        raise LawInputError(f"a CSV fit takes one of {', '.join(CSV_LAWS)}, not {law!r}")
    columns = {k: v for k, v in (columns or {}).items() if v}
    unknown = set(columns) - set(DEFAULT_COLUMNS)
    if unknown:
        raise LawInputError(f"unknown column role(s) {', '.join(sorted(unknown))}")
    if not path.is_file():
        raise LawInputError(f"{path}: no such file")
    df = pd.read_csv(path)
    if drop_highest:
        y = _column(df, path, columns.get("loss", DEFAULT_COLUMNS["loss"]))
        df = df.iloc[np.argsort(y, kind="stable")[: max(0, len(df) - drop_highest)]]

    def col(role: str) -> np.ndarray:
        return _column(df, path, columns.get(role, DEFAULT_COLUMNS[role]))

    if law == "parametric":
        fit, lines, plot = _fit_parametric(col, columns, n_bootstrap, seed, progress)
    elif law == "isoflop":
        fit, lines, plot = _fit_isoflop(col, n_bootstrap, seed)
    else:
        fit, lines, plot = _fit_data_constrained(col, seed)
    written: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"law": law, "csv": str(path), "runs": len(df), **_coefficients(fit)}
        (out / "fit.json").write_text(json.dumps(summary, indent=2))
        written = [out / "fit.json", *plot(out)]
    return CsvFit(law=law, path=path, runs=len(df), fit=fit, lines=lines, written=written)
