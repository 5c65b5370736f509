"""`quokka fit` flags: --law for an experiment's fit, and --csv FILE with its column flags for
a fit of any table of runs (laws/csv_fit.py does that fit). The reference files ship with the
package (quokka_ray/laws/reference/, whose README says where they come from):

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
import sys
from pathlib import Path

from quokka_ray.laws import LAW_NAMES, LawInputError
from quokka_ray.laws.csv_fit import CSV_LAWS, DEFAULT_COLUMNS, fit_csv

#: The law a CSV fit fits when --law is not given (an experiment's fit then fits every law).
DEFAULT_CSV_LAW = "parametric"
#: Flag -> column role of fit_csv.
COLUMN_FLAGS = {
    "n_column": "n",
    "d_column": "d",
    "c_column": "c",
    "loss_column": "loss",
    "u_column": "u",
    "epochs_column": "epochs",
}


def add_csv_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --law, --csv and the column flags to `parser` (the `quokka fit` subcommand)."""
    parser.add_argument(
        "--law",
        choices=LAW_NAMES,
        default=None,
        help=f"fit only this law (default: every law; with --csv, {DEFAULT_CSV_LAW}; "
        f"--csv takes {', '.join(CSV_LAWS)})",
    )
    g = parser.add_argument_group("fit a law to a CSV file of runs (see quokka_ray.laws.csv_fit)")
    g.add_argument("--csv", type=Path, metavar="FILE", help="CSV file, one row per run")
    g.add_argument(
        "--n-column",
        help=f"model size N, non-embedding parameters (default: {DEFAULT_COLUMNS['n']})",
    )
    g.add_argument(
        "--d-column",
        help="training tokens D (default: tokens; parametric: C/(6N) when --c-column is given)",
    )
    g.add_argument(
        "--c-column",
        help=f"compute C in FLOPs, the IsoFLOP budget (default: {DEFAULT_COLUMNS['c']})",
    )
    g.add_argument("--loss-column", help=f"final loss (default: {DEFAULT_COLUMNS['loss']})")
    g.add_argument("--u-column", help=f"unique tokens U (default: {DEFAULT_COLUMNS['u']})")
    g.add_argument("--epochs-column", help=f"epochs over U (default: {DEFAULT_COLUMNS['epochs']})")
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
        default=None,
        metavar="N",
        help="bootstrap replicates for 95%% intervals (default: 200 for an experiment's runs, "
        "0 with --csv)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of bootstrap and starts")
    g.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (with --csv: fit.json and the plots; without: the report)",
    )


def run_csv_fit(args: argparse.Namespace) -> int:
    """Fit args.law (default parametric) to args.csv and print the coefficients; returns the
    exit status (0, or 2 with a one-line error on stderr for unusable input)."""
    law = args.law or DEFAULT_CSV_LAW
    if not args.csv:
        print("error: give --csv FILE", file=sys.stderr)
        return 2
    columns = {role: getattr(args, flag, None) for flag, role in COLUMN_FLAGS.items()}
    try:
        result = fit_csv(
            args.csv,
            law,
            columns=columns,
            drop_highest=args.drop_highest_loss,
            n_bootstrap=args.bootstrap or 0,
            seed=args.seed,
            out_dir=args.out,
        )
    except LawInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{law} fit of {args.csv} ({result.runs} runs):")
    for line in result.lines:
        print(f"  {line}")
    if result.written:
        print(f"wrote {result.written[0]} and {result.written[0].parent}")
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
