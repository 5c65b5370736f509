"""`quokka fit --csv FILE --law {parametric,isoflop,data-constrained}`: fit a law to any table
of runs, such as published data, without an experiment or MLflow.

Columns default to quokka's own run table (non_embedding_params, tokens, budget_flops,
final_loss, unique_tokens, epochs); other files name theirs. For parametric, D comes from
--d-column, else from --c-column as D = C / (6 N) FLOPs. The reference files
(tests/data/README.md says where they come from):

  quokka fit --csv chinchilla_svg_extracted_data.csv --law parametric \\
      --n-column "Model Size" --c-column "Training FLOP" --loss-column loss --drop-highest-loss 5
  quokka fit --csv quokka_isoflop_points.csv --law isoflop \\
      --c-column C_flops --n-column N_params_plot --loss-column final_train_loss_smoothed
  quokka fit --csv quokka_data_constrained_curves.csv --law data-constrained \\
      --n-column params --u-column unique_tokens --epochs-column epochs --loss-column final_val_loss

`main(argv)` parses the same flags without the `quokka` command (the tests use it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .data_constrained import fit_data_constrained
from .errors import LawInputError
from .isoflop import fit_isoflop
from .parametric import fit_parametric
from .plots import plot_data_constrained, plot_isoflop, plot_isoloss, plot_optimal_allocation

LAWS = ("parametric", "isoflop", "data-constrained")
DEFAULT_COLUMNS = {
    "n_column": "non_embedding_params",
    "d_column": "tokens",
    "c_column": "budget_flops",
    "loss_column": "final_loss",
    "u_column": "unique_tokens",
    "epochs_column": "epochs",
}


def add_csv_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --csv, --law and the column flags to `parser` (the `quokka fit` subcommand)."""
    g = parser.add_argument_group("fit a law to a CSV file of runs (see quokka_ray.laws.csv_fit)")
    g.add_argument("--csv", type=Path, metavar="FILE", help="CSV file, one row per run")
    g.add_argument(
        "--law", choices=LAWS, default="parametric", help="law to fit (default: parametric)"
    )
    g.add_argument(
        "--n-column",
        help=f"model size N, non-embedding parameters (default: {DEFAULT_COLUMNS['n_column']})",
    )
    g.add_argument(
        "--d-column",
        help="training tokens D (default: tokens; parametric: C/(6N) when --c-column is given)",
    )
    g.add_argument(
        "--c-column",
        help=f"compute C in FLOPs, the IsoFLOP budget (default: {DEFAULT_COLUMNS['c_column']})",
    )
    g.add_argument("--loss-column", help=f"final loss (default: {DEFAULT_COLUMNS['loss_column']})")
    g.add_argument("--u-column", help=f"unique tokens U (default: {DEFAULT_COLUMNS['u_column']})")
    g.add_argument(
        "--epochs-column", help=f"epochs over U (default: {DEFAULT_COLUMNS['epochs_column']})"
    )
    g.add_argument(
        "--drop-highest-loss",
        type=int,
        default=0,
        metavar="K",
        help="leave out the K runs of highest loss (Besiroglu et al. dropped 5)",
    )
    g.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="bootstrap replicates for 95%% intervals (parametric, isoflop)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of bootstrap and starts")
    g.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (with --csv: fit.json and the plots; without: the report)",
    )


def _column(df: pd.DataFrame, path: Path, name: str) -> np.ndarray:
    if name not in df.columns:
        raise LawInputError(
            f"{path}: no column {name!r}; available columns: {', '.join(map(str, df.columns))}"
        )
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(float)
    if not np.isfinite(values).any():
        raise LawInputError(f"{path}: column {name!r} has no numeric value")
    return values


def _pick(args, key: str) -> str:
    return getattr(args, key, None) or DEFAULT_COLUMNS[key]


def _fit(args, df: pd.DataFrame):
    """The fit, its printable lines, and a function that writes its plot to a path."""
    path = args.csv
    col = lambda key: _column(df, path, _pick(args, key))  # noqa: E731
    if args.law == "parametric":
        N, y = col("n_column"), col("loss_column")
        # D from tokens, or from compute as D = C / (6 N) when only --c-column is given
        D = col("d_column") if args.d_column or not args.c_column else col("c_column") / (6.0 * N)
        fit = fit_parametric(N, D, y, n_bootstrap=args.bootstrap, seed=args.seed)
        lines = [
            f"{n} = {getattr(fit, n):.6g}"
            + (
                f"  95% CI [{fit.intervals[n][0]:.4g}, {fit.intervals[n][1]:.4g}]"
                if n in fit.intervals
                else ""
            )
            for n in ("E", "A", "B", "alpha", "beta")
        ]
        try:
            lines.append(
                f"N_opt = {fit.k_N:.4g} C^{fit.a:.4f}, D_opt = {fit.k_D:.4g} C^{fit.b:.4f}"
            )
        except ValueError as err:
            lines.append(f"no compute-optimal allocation: {err}")
        return fit, lines, lambda p: plot_isoloss(fit, p, N=N, D=D)
    if args.law == "isoflop":
        C, N, y = col("c_column"), col("n_column"), col("loss_column")
        fit = fit_isoflop(C, N, y, n_bootstrap=args.bootstrap, seed=args.seed)
        ci = (
            f"  95% CI [{fit.intervals['a'][0]:.4f}, {fit.intervals['a'][1]:.4f}]"
            if "a" in fit.intervals
            else ""
        )
        lines = [
            f"N_opt = {fit.k_N:.4g} C^{fit.a:.4f}{ci}",
            f"D_opt = {fit.k_D:.4g} C^{fit.b:.4f}",
            f"budgets with a vertex: {len(fit.budgets)}",
        ]
        lines += [
            f"skipped budget C = {s.budget_flops:.3g}: {s.reason}" for s in fit.skipped_budgets
        ]

        def plot(p):
            plot_isoflop(fit, C, N, y, p)
            return plot_optimal_allocation(p.with_name("allocation.png"), isoflop=fit)

        return fit, lines, plot
    N, U, e, y = col("n_column"), col("u_column"), col("epochs_column"), col("loss_column")
    law = fit_data_constrained(N, U, e, y, seed=args.seed)
    lines = [f"{n} = {v:.6g}" for n, v in law.coefficients().items()]
    return law, lines, lambda p: plot_data_constrained(law, N, U, e, y, p)


def _coefficients(fit) -> dict:
    if hasattr(fit, "coefficients"):
        out = fit.coefficients()
    else:
        out = {n: getattr(fit, n) for n in ("a", "b", "k_N", "k_D")}
    intervals = getattr(fit, "intervals", {}) or {}
    return {"coefficients": out, "intervals": {k: list(v) for k, v in intervals.items()}}


def run_csv_fit(args: argparse.Namespace) -> int:
    """Fit args.law to args.csv and print the coefficients; returns the exit status (0, or 2
    with a one-line error on stderr for unusable input)."""
    try:
        if not args.csv or not Path(args.csv).is_file():
            raise LawInputError(f"{args.csv}: no such file")
        df = pd.read_csv(args.csv)
        if args.drop_highest_loss:
            y = _column(df, args.csv, _pick(args, "loss_column"))
            df = df.iloc[np.argsort(y, kind="stable")[: max(0, len(df) - args.drop_highest_loss)]]
        fit, lines, plot = _fit(args, df)
    except LawInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.law} fit of {args.csv} ({len(df)} runs):")
    for line in lines:
        print(f"  {line}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fit.json").write_text(
            json.dumps(
                {"law": args.law, "csv": str(args.csv), "runs": len(df), **_coefficients(fit)},
                indent=2,
            )
        )
        written = plot(out / f"{args.law}.png")
        print(f"wrote {out / 'fit.json'} and {written.parent}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="quokka fit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_csv_fit_arguments(parser)
    return run_csv_fit(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
