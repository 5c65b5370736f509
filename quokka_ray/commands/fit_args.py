"""`quokka fit` flags: --law for an experiment's fit, and --csv FILE with its column flags for
a fit of any table of runs (laws/csv_fit.py does that fit). The reference files ship with the
package (quokka_ray/laws/reference/, whose README says where they come from):

  quokka fit --csv chinchilla_svg_extracted_data.csv --law parametric \\
      --n-column "Model Size" --c-column "Training FLOP" --loss-column loss --drop-highest-loss 5
  quokka fit --csv quokka_isoflop_points.csv --law isoflop \\
      --c-column C_flops --n-column N_params_plot --loss-column final_train_loss_smoothed
  quokka fit --csv quokka_data_constrained_curves.csv --law data-constrained \\
      --n-column params --u-column unique_tokens --epochs-column epochs --loss-column final_val_loss

Closing the loop on an experiment's fit (laws/proposal.py, laws/suggest.py):

  quokka fit EXPERIMENT --propose 3e12            # an experiment file for the predicted optimum
  quokka fit EXPERIMENT --suggest 4 --target 1e14  # the 4 runs that most narrow N_opt(1e14)

--json prints either fit as one JSON object (commands/fit_json.py).

`main(argv)` parses the same flags without the `quokka` command (the tests use it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of the text (progress and notices go to stderr): "
        "per objective every law fitted with its coefficients and intervals, held-out errors, "
        "the laws skipped and why, and the proposal and suggestions when asked for",
    )


def add_loop_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --propose, --propose-out, --suggest, --target and --suggest-for (an experiment's fit
    only). Values are checked by loop_options, so that a bad one is one line, not a usage."""
    g = parser.add_argument_group("close the loop (an experiment's fit only)")
    g.add_argument("--propose", metavar="BUDGET",
                   help="write an experiment file that trains the run the fitted law predicts "
                   "to be compute-optimal at BUDGET FLOPs (e.g. 3e12), with its predicted loss")
    g.add_argument("--propose-out", type=Path, metavar="PATH",
                   help="the proposal's file (default: <name>-proposal-<BUDGET>.py beside the "
                   "report)")
    g.add_argument("--suggest", metavar="K",
                   help="name the K runs that would most narrow the interval of the IsoFLOP "
                   "law's extrapolation to --target")
    g.add_argument("--target", metavar="BUDGET", help="the budget (FLOPs) --suggest aims at")
    g.add_argument("--suggest-for", choices=("n_opt", "loss"), default="n_opt",
                   help="narrow N_opt (default) or the loss at the optimum at --target")


@dataclass(frozen=True)
class LoopOptions:
    """--propose and --suggest, checked."""

    propose: float | None = None
    propose_out: Path | None = None
    suggest: int | None = None
    target: float | None = None
    suggest_for: str = "n_opt"

    @property
    def any(self) -> bool:
        return self.propose is not None or self.suggest is not None


def _flops(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{option}: expected a positive number of FLOPs (e.g. 3e12), got {text!r}")
    return value


def loop_options(args: argparse.Namespace) -> LoopOptions:
    """The checked --propose / --suggest options; ValueError names the option and value."""
    suggest = getattr(args, "suggest", None)
    if suggest is not None:
        try:
            count = int(suggest)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"--suggest: expected a number of runs >= 1, got {suggest!r}")
        suggest = count
    target = _flops("--target", getattr(args, "target", None))
    if suggest is not None and target is None:
        raise ValueError(f"--suggest {suggest}: give --target BUDGET, the budget (FLOPs) whose "
                         "extrapolation the runs should narrow")
    if target is not None and suggest is None:
        raise ValueError(f"--target {args.target}: only --suggest K uses it")
    propose = _flops("--propose", getattr(args, "propose", None))
    out = getattr(args, "propose_out", None)
    if out is not None and propose is None:
        raise ValueError(f"--propose-out {out}: only --propose BUDGET writes a proposal")
    options = LoopOptions(propose, out, suggest, target, getattr(args, "suggest_for", "n_opt"))
    if options.any and getattr(args, "csv", None):
        raise ValueError("--propose and --suggest work on an experiment's runs, not with --csv")
    return options


def run_csv_fit(args: argparse.Namespace) -> int:
    """Fit args.law (default parametric) to args.csv and print the coefficients; returns the
    exit status (0, or 2 with a one-line error on stderr for unusable input)."""
    law = args.law or DEFAULT_CSV_LAW
    if not args.csv:
        print("error: give --csv FILE", file=sys.stderr)
        return 2
    from quokka_ray.commands.progress import ProgressBar

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
            progress=ProgressBar(),
        )
    except LawInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        from quokka_ray.commands.fit_json import csv_fit_json

        print(json.dumps(csv_fit_json(result, columns, args.bootstrap or 0, args.seed),
                         indent=1, allow_nan=False))
    else:
        print(f"{law} fit of {args.csv} ({result.runs} runs):")
        for line in result.lines:
            print(f"  {line}")
    if result.written:
        print(f"wrote {result.written[0]} and {result.written[0].parent}",
              file=sys.stderr if getattr(args, "json", False) else sys.stdout)
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
