"""`quokka bench laws`: timings and accuracy of the law fits on the published reference data.

    .venv/bin/quokka bench laws            # all, ~1-2 minutes on 2 cores
    .venv/bin/quokka bench laws --quick    # no reference search, 100 refits

Measures (a) the fast parametric fit on Besiroglu et al.'s 240 Chinchilla points against the
reference search (scipy L-BFGS-B from each of the 4,500 grid starts): seconds each and the
relative objective gap; (b) 1,000 bootstrap refits of the parametric law; (c) the
data-constrained law fitted on 4/5 of Quokka's 48 (U, N) curves, predicting the held-out fifth,
against Quokka's published eq. 15 on the same curves.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from quokka_ray.laws import (
    fit_parametric,
    grid_search_parametric,
    holdout_data_constrained,
    parametric_objective,
)
from quokka_ray.laws.published import QUOKKA_EQ15, REFERENCE_DIR

#: The reference CSVs, shipped with the package (sources in its README).
DATA_DIR = REFERENCE_DIR


def load_chinchilla(data_dir: Path = DATA_DIR, drop_highest: int = 5):
    """Besiroglu et al.'s 245 points minus the `drop_highest` highest-loss ones:
    (N parameters, D = C / (6N) tokens, loss)."""
    df = pd.read_csv(data_dir / "chinchilla_svg_extracted_data.csv")
    df = df.sort_values("loss", kind="stable").iloc[: len(df) - drop_highest]
    N = df["Model Size"].to_numpy(float)
    D = df["Training FLOP"].to_numpy(float) / (6.0 * N)
    return N, D, df["loss"].to_numpy(float)


def load_data_constrained(data_dir: Path = DATA_DIR):
    """Quokka Figure 4's curves: (N parameters, U unique tokens, epochs, validation loss)."""
    df = pd.read_csv(data_dir / "quokka_data_constrained_curves.csv")
    return tuple(
        df[c].to_numpy(float) for c in ("params", "unique_tokens", "epochs", "final_val_loss")
    )


def _timed(fn, repeats: int = 1):
    """(result, wall seconds, CPU seconds) of the fastest of `repeats` calls. CPU seconds are
    this process's: on a busy shared machine they show the work when wall time does not."""
    best, out = (np.inf, np.inf), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return out, best[0], best[1]


def run_law_benchmarks(
    *,
    reference: bool = True,
    n_bootstrap: int = 1000,
    data_constrained: bool = True,
    workers: int = 1,
    data_dir: Path = DATA_DIR,
) -> list[dict]:
    """Run the benchmarks; each result is a dict with "name", "seconds" and its numbers."""
    N, D, y = load_chinchilla(data_dir)
    results = []
    fast, fast_s, fast_cpu = _timed(lambda: fit_parametric(N, D, y), repeats=3)
    row = {
        "name": "parametric fit, fast (240 Chinchilla points)",
        "seconds": fast_s,
        "cpu_seconds": fast_cpu,
        "objective": parametric_objective(fast, N, D, y),
        "alpha": fast.alpha,
        "beta": fast.beta,
    }
    results.append(row)
    if reference:
        ref, _, ref_cpu = _timed(lambda: grid_search_parametric(N, D, y, workers=workers))
        ref_obj = parametric_objective(ref.best, N, D, y)
        results.append(
            {
                "name": f"parametric fit, reference 4,500-start L-BFGS-B ({workers} process(es))",
                "seconds": ref.seconds,
                # worker processes' CPU is not counted here
                **({"cpu_seconds": ref_cpu} if workers == 1 else {}),
                "objective": ref_obj,
                "starts_within_1e-6": float(np.mean(ref.objectives <= ref_obj * (1 + 1e-6))),
            }
        )
        row["relative_gap_to_reference"] = (row["objective"] - ref_obj) / ref_obj
        row["speedup"] = ref.seconds / fast_s
    if n_bootstrap:
        boot, boot_s, boot_cpu = _timed(lambda: fit_parametric(N, D, y, n_bootstrap=n_bootstrap))
        results.append(
            {
                "name": f"parametric fit + {n_bootstrap} bootstrap refits",
                "seconds": boot_s,
                "cpu_seconds": boot_cpu,
                "replicates_ok": int(boot.bootstrap_samples.shape[0]),
                **{
                    f"{k} 95% CI": v
                    for k, v in boot.intervals.items()
                    if k in ("E", "alpha", "beta")
                },
            }
        )
    if data_constrained:
        (held, _), dc_s, dc_cpu = _timed(
            lambda: holdout_data_constrained(
                *load_data_constrained(data_dir), reference=QUOKKA_EQ15
            )
        )
        results.append(
            {
                "name": "data-constrained fit on 4/5 of the curves, held-out fifth",
                "seconds": dc_s,
                "cpu_seconds": dc_cpu,
                "held_out": held.held_out,
                "fitted_rmse_log_loss": held.metrics["rmse_log_loss"],
                "eq15_rmse_log_loss": held.reference_metrics["rmse_log_loss"],
                "fitted_mae_loss": held.metrics["mae_loss"],
                "eq15_mae_loss": held.reference_metrics["mae_loss"],
            }
        )
    return results


def _format(value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Run and print the benchmarks. argv None means no options (so that `quokka bench laws`
    can call main() without its own argv being parsed here)."""
    argv = [] if argv is None else argv
    parser = argparse.ArgumentParser(prog="quokka bench laws", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="no reference search, 100 refits")
    parser.add_argument("--workers", type=int, default=1, help="processes for the reference search")
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="folder of the reference CSVs"
    )
    args = parser.parse_args(argv)
    results = run_law_benchmarks(
        reference=not args.quick,
        n_bootstrap=100 if args.quick else 1000,
        workers=args.workers,
        data_dir=args.data_dir,
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}"
    )
    for row in results:
        print(f"{row['name']}: {row['seconds']:.2f} s")
        for key, value in row.items():
            if key not in ("name", "seconds"):
                print(f"    {key}: {_format(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
