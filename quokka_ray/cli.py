"""The `quokka` command: plan, run, fit, sample, bench."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from quokka_ray import __version__


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from quokka_ray.sweep.validation import ExperimentError

    try:
        return args.handler(args)
    except ExperimentError as err:
        print(f"quokka: error: {err}", file=sys.stderr)
        return 2
    except (LookupError, ValueError, FileNotFoundError) as err:
        if os.environ.get("QUOKKA_TRACEBACK"):
            raise
        print(f"quokka: error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quokka", description="Scaling-law studies of diffusion LMs on Ray.")
    parser.add_argument("--version", action="version", version=f"quokka-ray {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="list every trial an experiment file implies")
    plan.add_argument("experiment_file")
    plan.add_argument("--json", action="store_true", help="one JSON object per trial")
    plan.set_defaults(handler=_plan)

    run = sub.add_parser("run", help="run an experiment's trials with Ray Tune + Ray Train")
    run.add_argument("experiment_file")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, "
                     "else sqlite:///mlflow.db here)")
    run.add_argument("--storage-path", help="checkpoints and Tune state (a folder or s3://, gs://)")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a "
                     "local cluster)")
    run.set_defaults(handler=_run)

    fit = sub.add_parser("fit", help="fit scaling laws from an experiment's runs or a CSV")
    fit.add_argument("experiment", nargs="?", help="experiment file or name")
    fit.add_argument("--tracking-uri")
    from quokka_ray.commands.fit_args import add_csv_fit_arguments

    add_csv_fit_arguments(fit)  # also --law, and --out (default quokka_outputs/<name>)
    fit.set_defaults(handler=_fit)

    sample = sub.add_parser("sample", help="generate text from a trained trial's checkpoint")
    sample.add_argument("experiment_file")
    sample.add_argument("--trial", required=True, help="trial name (see quokka plan)")
    sample.add_argument("--storage-path")
    sample.add_argument("-n", "--num-samples", type=int, default=4)
    sample.add_argument("--steps", type=int, default=64, help="DLM denoising steps")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(handler=_sample)

    bench = sub.add_parser("bench", help="benchmarks: law fitting, training throughput")
    benches = bench.add_subparsers(required=True, metavar="WHAT")
    laws = benches.add_parser("laws", help="law-fit timings on the reference data")
    laws.add_argument("--quick", action="store_true", help="no reference search, 100 refits")
    laws.add_argument("--workers", type=int, default=1, help="processes for the reference search")
    laws.set_defaults(handler=_bench_laws)
    train = benches.add_parser("train", help="training tokens/s and MFU on this machine's device")
    train.add_argument("--non-embedding-params", type=int, default=1_000_000)
    train.add_argument("--seq-len", type=int, default=256)
    train.add_argument("--batch-sequences", type=int, default=8)
    train.add_argument("--steps", type=int, default=10)
    train.add_argument("--kind", choices=["dlm", "ar"], default="dlm")
    train.add_argument("--vocab-size", type=int, default=50_304)
    train.set_defaults(handler=_bench_train)
    return parser


def _load(path: str):
    from quokka_ray.sweep import ExperimentError, load_experiment, plan_trials

    experiment = load_experiment(path)
    try:
        trials = plan_trials(experiment)
    except ExperimentError as err:
        raise ExperimentError(f"{path}: {err}") from None
    return experiment, trials


def _plan(args) -> int:
    experiment, trials = _load(args.experiment_file)
    rows = [{
        "name": t.name, "kind": t.kind, "kernel": t.objective.kernel,
        "schedule": t.objective.schedule, "non_embedding_params": t.non_embedding_params,
        "total_params": t.total_params, "n_layers": t.model.n_layers, "d_model": t.model.d_model,
        "tokens": t.tokens, "flops": t.flops, "budget_flops": t.budget_flops,
        "exact_flops": None if t.tokens is None else t.exact_flops_per_token * t.tokens,
        "lr": _show(t.hyperparameters.lr), "weight_decay": _show(t.hyperparameters.weight_decay),
        "batch_sequences": _show(t.hyperparameters.batch_sequences),
        "searched": list(t.searched),
    } for t in trials]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"experiment {experiment.name!r}: {len(trials)} trials"
          + (f" x {experiment.search.num_samples} samples of {', '.join(trials[0].searched)}"
             if trials and trials[0].searched else ""))
    header = f"{'name':<34} {'kind':<4} {'N':>9} {'L x d':>7} {'D tokens':>10} {'C=6ND':>9} {'budget':>9} {'lr':>8} {'batch':>5}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<34} {r['kind']:<4} {r['non_embedding_params']:>9,} "
              f"{str(r['n_layers']) + 'x' + str(r['d_model']):>7} {_num(r['tokens']):>10} "
              f"{_num(r['flops']):>9} {_num(r['budget_flops']):>9} {str(r['lr']):>8} "
              f"{str(r['batch_sequences']):>5}")
    known = [r["exact_flops"] for r in rows if r["exact_flops"]]
    if known:
        print(f"total training compute (exact FLOPs, attention and output layer included): "
              f"{sum(known):.3g}")
    return 0


def _show(value):
    from quokka_ray.sweep.validation import is_search_space

    return "searched" if is_search_space(value) else value


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"


def _run(args) -> int:
    from quokka_ray.sweep.driver import run_experiment

    experiment, trials = _load(args.experiment_file)
    print(f"[quokka] {experiment.name}: {len(trials)} trials", flush=True)
    outcome = run_experiment(experiment, trials, tracking_uri=args.tracking_uri,
                             storage_path=args.storage_path, address=args.address)
    print(f"[quokka] {outcome.finished} trials finished, {outcome.failed} failed")
    print(f"[quokka] checkpoints and Tune state: {outcome.storage_path}")
    print(f"[quokka] compare runs: mlflow ui --backend-store-uri {outcome.tracking_uri}")
    print(f"[quokka] fit the laws: quokka fit {args.experiment_file}"
          + (f" --tracking-uri {outcome.tracking_uri}" if args.tracking_uri else ""))
    return 0 if outcome.failed == 0 else 1


def _fit(args) -> int:
    if args.csv:
        from quokka_ray.commands.fit_args import run_csv_fit

        return run_csv_fit(args)
    if not args.experiment:
        raise ValueError("give an experiment file or name, or --csv FILE")
    from quokka_ray.analysis import fit_experiment
    from quokka_ray.tracking import resolve_tracking_uri

    name, uri = args.experiment, args.tracking_uri
    if args.experiment.endswith(".py") or Path(args.experiment).is_file():
        from quokka_ray.sweep import load_experiment

        experiment = load_experiment(args.experiment)
        name, uri = experiment.name, uri or os.environ.get("MLFLOW_TRACKING_URI") or experiment.tracking_uri
    uri = resolve_tracking_uri(uri)
    out_dir = Path(args.out or Path("quokka_outputs") / name).resolve()
    outcome = fit_experiment(name, uri, out_dir)
    print(outcome.summary)
    print(f"[quokka] {outcome.trials} trials fitted; report: {outcome.markdown_path}")
    for path in outcome.plot_paths:
        print(f"[quokka] plot: {path}")
    if outcome.parent_run_id:
        print(f"[quokka] logged to MLflow run {outcome.parent_run_id} (artifacts/laws)")
    return 0


def _sample(args) -> int:
    from quokka_ray.sampling import sample_from_checkpoint

    experiment, trials = _load(args.experiment_file)
    for text in sample_from_checkpoint(experiment, trials, args.trial, storage_path=args.storage_path,
                                       num_samples=args.num_samples, steps=args.steps,
                                       seed=args.seed):
        print("-" * 60)
        print(text)
    return 0


def _bench_laws(args) -> int:
    from quokka_ray.commands.bench_laws import main as laws_bench

    return laws_bench((["--quick"] if args.quick else []) + ["--workers", str(args.workers)])


def _bench_train(args) -> int:
    from quokka_ray.commands.bench_train import run_train_benchmark

    run_train_benchmark(args.non_embedding_params, args.seq_len, args.batch_sequences,
                        args.steps, args.kind, vocab_size=args.vocab_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
