"""The `quokka` command: plan, run, fit, train, sample, bench."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

from quokka_ray import __version__

#: Bootstrap replicates of `quokka fit EXPERIMENT` (a CSV fit has none unless asked).
DEFAULT_FIT_BOOTSTRAP = 200


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from quokka_ray.commands.verbosity import set_verbosity
    from quokka_ray.config import ConfigError

    set_verbosity(args.verbose)  # before Ray or MLflow is imported: their workers inherit it

    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"quokka: error: {err}", file=sys.stderr)
        return 2
    except (LookupError, ValueError, OSError) as err:
        if os.environ.get("QUOKKA_TRACEBACK"):
            raise
        print(f"quokka: error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    from quokka_ray.commands.verbosity import add_verbose_argument

    parser = argparse.ArgumentParser(
        prog="quokka", description="Scaling-law studies of diffusion LMs on Ray.")
    parser.add_argument("--version", action="version", version=f"quokka-ray {__version__}")
    add_verbose_argument(parser, default=False)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    from quokka_ray.commands.cost_args import add_cost_arguments

    plan = sub.add_parser("plan", help="list every trial an experiment file implies, with its "
                          "training FLOPs and GPU-hours")
    plan.add_argument("experiment_file")
    _add_set_argument(plan)
    plan.add_argument("--json", action="store_true",
                      help="the same as one JSON object: experiment, file_settings, trials "
                      "(one object per trial), stable_phases (of ladders) and totals")
    add_cost_arguments(plan)
    plan.set_defaults(handler=_plan)

    run = sub.add_parser("run", help="run an experiment's trials with Ray Tune + Ray Train")
    run.add_argument("experiment_file")
    _add_set_argument(run)
    add_cost_arguments(run)
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, "
                     "else sqlite:///mlflow.db here)")
    run.add_argument("--storage-path", help="checkpoints and Tune state (a folder or s3://, gs://)")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a "
                     "local cluster)")
    add_verbose_argument(run)
    run.set_defaults(handler=_run)

    fit = sub.add_parser("fit", help="fit scaling laws from an experiment's runs or a CSV")
    fit.add_argument("experiment", nargs="?", help="experiment file or name")
    _add_set_argument(fit)
    fit.add_argument("--tracking-uri")
    from quokka_ray.commands.fit_args import add_csv_fit_arguments, add_loop_arguments

    add_csv_fit_arguments(fit)  # also --law, and --out (default quokka_outputs/<name>)
    add_loop_arguments(fit)  # --propose, --suggest
    add_verbose_argument(fit)
    fit.set_defaults(handler=_fit)

    train = sub.add_parser("train", help="one trial as one Ray Train run, without Tune or "
                           "MLflow (debugging, benchmarks)")
    train.add_argument("experiment_file")
    _add_set_argument(train)
    train.add_argument("--trial", help="trial name (see quokka plan; default: the first)")
    train.add_argument("--workers", type=_workers, default=None,
                       help="Ray Train workers: N, or MIN,MAX for an elastic run "
                       "(default: the experiment's Resources.workers_per_trial)")
    train.add_argument("--steps", type=int, help="optimizer steps (default: the trial's)")
    train.add_argument("--storage-path", help="where Ray Train keeps checkpoints "
                       "(default: the experiment's storage path)")
    train.add_argument("--json", action="store_true",
                       help="one JSON object per logged step (step, loss, tokens, ...)")
    add_verbose_argument(train)
    train.set_defaults(handler=_train)

    sample = sub.add_parser("sample", help="generate text from a trained trial's checkpoint")
    sample.add_argument("experiment_file")
    _add_set_argument(sample)
    sample.add_argument("--trial", required=True, help="trial name (see quokka plan)")
    sample.add_argument("--storage-path")
    sample.add_argument("-n", "--num-samples", type=int, default=4)
    sample.add_argument("--steps", type=int, default=64, help="DLM denoising steps")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(handler=_sample)

    from quokka_ray.commands.data import add_bench_data_parser, add_data_parser

    add_data_parser(sub)  # quokka data prepare | train-tokenizer

    bench = sub.add_parser("bench", help="benchmarks: law fitting, training, data throughput")
    benches = bench.add_subparsers(required=True, metavar="WHAT")
    add_bench_data_parser(benches)
    from quokka_ray.commands.bench_search import add_bench_search_parser

    add_bench_search_parser(benches)  # quokka bench search: Optuna + ASHA against the grid
    laws = benches.add_parser("laws", help="law-fit timings on the reference data")
    laws.add_argument("--quick", action="store_true", help="no reference search, 100 refits")
    laws.add_argument("--workers", type=int, default=1, help="processes for the reference search")
    laws.set_defaults(handler=_bench_laws)
    from quokka_ray.commands.bench_train_args import add_bench_train_parser

    add_bench_train_parser(benches)  # quokka bench train: a trial's loop, or a model's step
    ray_train = benches.add_parser(
        "ray-train", help="a trial's step time in the plain loop and under Ray Train, and "
        "Ray Train's start-up (CPU)")
    ray_train.add_argument("experiment_file")
    _add_set_argument(ray_train)
    ray_train.add_argument("--trial", help="trial name (default: the first)")
    ray_train.add_argument("--steps", type=int, default=60)
    ray_train.add_argument("--storage-path", default=None)
    ray_train.set_defaults(handler=_bench_ray_train)
    return parser


def _add_set_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="a setting of the experiment file: a keyword argument of its "
                        "make_experiment(...), for example --set scale=paper (repeatable)")


def _load(path: str, assignments: list[str] | None):
    """(experiment, its checked trials, the file's settings) of an experiment file given
    `--set` texts."""
    from quokka_ray.sweep.loader import checked_trials, load_experiment_file
    from quokka_ray.sweep.settings import parse_assignments

    experiment, file_settings = load_experiment_file(path, parse_assignments(assignments))
    return experiment, checked_trials(path, experiment), file_settings


def _check_gpu_hours(path: str, cost, rate, limit: float | None) -> None:
    from quokka_ray.config import ConfigError
    from quokka_ray.sweep.costs import check_gpu_hours

    if limit is None:
        return
    try:
        check_gpu_hours(cost, rate, limit)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _corpus(experiment, trials, path: str):
    """The corpus the trials would train on, checked against them; None where it is not
    prepared yet and cannot be prepared offline (a Hugging Face source: `quokka run` does)."""
    from quokka_ray.config import ConfigError
    from quokka_ray.data import prepare_shards, read_manifest, with_root
    from quokka_ray.sweep.checks import check_corpus, corpus_from_manifest

    # In this process, without Ray: the shards and their hashes are the ones `quokka run` writes.
    data = with_root(experiment.data, experiment.storage_path)
    manifest = read_manifest(data)
    if manifest is None and (data.source == "stdlib" or Path(data.source).expanduser().exists()):
        from quokka_ray.commands.progress import ProgressBar

        prepare_shards(data, progress=ProgressBar())
        manifest = read_manifest(data)
    if manifest is None:
        return None
    corpus = corpus_from_manifest(manifest)
    try:
        check_corpus(experiment, trials, corpus)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return corpus


def _plan(args) -> int:
    from quokka_ray.commands.cost_args import gpu_rate, max_gpu_hours
    from quokka_ray.sweep.checks import unique_tokens
    from quokka_ray.sweep.costs import GpuRate, budget_count, format_gpu_hours, plan_cost

    rate, limit = gpu_rate(args), max_gpu_hours(args)
    experiment, trials, file_settings = _load(args.experiment_file, args.set)
    cost = plan_cost(experiment, trials)
    _check_gpu_hours(args.experiment_file, cost, rate, limit)  # before any shard is written
    corpus = _corpus(experiment, trials, args.experiment_file)

    def trial_unique(spec) -> int | None:
        return unique_tokens(experiment, corpus, spec) if corpus else spec.unique_tokens

    rows = [{
        "name": t.name, "kind": t.kind, "kernel": t.objective.kernel,
        "schedule": t.objective.schedule, "loss": t.objective.loss,
        "timesteps": t.objective.timesteps, "non_embedding_params": t.non_embedding_params,
        "total_params": t.total_params, "n_layers": t.model.n_layers, "d_model": t.model.d_model,
        "tokens": t.tokens, "flops": t.flops, "budget_flops": t.budget_flops,
        "unique_tokens": trial_unique(t),
        "epochs": None if trial_unique(t) is None or t.tokens is None
        else t.tokens / trial_unique(t),
        "exact_flops": c.flops, "exact_flops_upper_bound": c.upper_bound,
        "gpu_hours": rate.gpu_hours(c.flops) if rate else None,
        "lr": _show(t.hyperparameters.lr), "weight_decay": _show(t.hyperparameters.weight_decay),
        "batch_sequences": _show(t.hyperparameters.batch_sequences),
        "searched": list(t.searched), "settings": t.settings, "runs": cost.runs_of[t.name],
    } for t, c in zip(trials, cost.trials, strict=True)]
    stable = [{"name": c.name, "exact_flops": c.flops,
               "gpu_hours": rate.gpu_hours(c.flops) if rate else None}
              for c in cost.stable_phases]
    total_hours = rate.gpu_hours(cost.flops) if rate else None
    counted = budget_count(experiment, trials)
    if args.json:
        totals = {"trials": len(trials), "runs": cost.runs, "exact_flops": cost.flops,
                  "upper_bound": cost.upper_bound,
                  "gpu": rate.gpu if rate else None,
                  "peak_flops": rate.peak_flops if rate else None,
                  "mfu": rate.mfu if rate else None, "gpu_hours": total_hours,
                  "max_gpu_hours": limit}
        print(json.dumps({"experiment": experiment.name, "file_settings": file_settings,
                          "budget_flops_rule": counted.rule if counted else None,
                          "trials": rows, "stable_phases": stable, "totals": totals}, indent=1))
        return 0
    given = " ".join(f"{k}={v}" for k, v in file_settings.items())
    print(f"experiment {experiment.name!r}" + (f" ({given})" if given else "")
          + f": {len(trials)} trials"
          + (f" x {_runs_range(cost)} samples of {', '.join(trials[0].searched)}"
             if trials and trials[0].searched else ""))
    header = (f"{'name':<36} {'kind':<4} {'N':>13} {'L x d':>7} {'D tokens':>10} {'epochs':>6} "
              f"{'C=6ND':>9} {'budget':>9} {'exact FLOPs':>11} {'lr':>8} {'batch':>5}"
              + (f" {'GPU-h':>8}" if rate else ""))
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<36} {r['kind']:<4} {r['non_embedding_params']:>13,} "
              f"{str(r['n_layers']) + 'x' + str(r['d_model']):>7} {_num(r['tokens']):>10} "
              f"{_num(r['epochs']):>6} {_num(r['flops']):>9} {_num(r['budget_flops']):>9} "
              f"{_num(r['exact_flops']):>11} {str(r['lr']):>8} {str(r['batch_sequences']):>5}"
              + (f" {format_gpu_hours(r['gpu_hours']):>8}" if rate else ""))
    if counted is not None and counted.rule == "exact":
        within = ("" if counted.largest_miss is None
                  else f" within {counted.largest_miss:.2%} (budget_tolerance "
                       f"{experiment.study.budget_tolerance:.0%})")
        decays = "; a ladder's trial lists under exact FLOPs only its decay" if stable else ""
        print(f"budgets count exact training FLOPs (IsoFlopStudy.budget_flops_rule='exact', "
              f"D = budget / exact FLOPs per token): each trial's whole run trains its "
              f"budget{within}; C=6ND counts the same tokens at 6 N{decays}")
    elif counted is not None:
        low, high = counted.exact_over_six_n
        print(f"budgets count C = 6ND (IsoFlopStudy.budget_flops_rule='6N'): exact training "
              f"FLOPs per token are {low:.2f}x to {high:.2f}x of 6 N across these sizes, so one "
              "budget trains them unequal real compute (budget_flops_rule='exact' counts those)")
    if stable:
        print("stable phases of the ladders, each trained once (the trials above train only "
              "their decays):")
        for r in stable:
            print(f"  {r['name']:<42} exact FLOPs {_num(r['exact_flops']):>9}"
                  + (f"  GPU-h {format_gpu_hours(r['gpu_hours']):>8}" if rate else ""))
    most = "at most " if cost.upper_bound else ""
    print(f"total training compute (exact FLOPs, attention and output layer included): "
          f"{most}{cost.flops:.3g}")
    if rate:
        print(f"total GPU-hours on {rate.describe()}: {most}{format_gpu_hours(total_hours)}"
              + (f" (limit {limit:g})" if limit else ""))
    budget = experiment.search.gpu_budget
    if budget is not None:
        print(f"the totals count {cost.runs} runs: each study point's search runs as many trials "
              f"as {budget.hours_per_point:g} GPU-hours pay for at full length on "
              f"{GpuRate(budget.gpu, budget.mfu).describe()} (Search.gpu_budget): "
              f"{_runs_range(cost)} per point")
    elif cost.runs > len(trials):  # the table shows one run of each trial
        print(f"the totals count {cost.runs} runs: Tune runs each of the {len(trials)} trial(s) "
              f"{experiment.search.num_samples} times (Search.num_samples)")
    if cost.early_stopping:
        print("ASHA may stop runs early: the totals are what the plan costs if none is stopped")
    _print_ladders(experiment, trials)
    if corpus is None:
        print(f"data: {experiment.data.source} is not prepared yet; `quokka run` prepares it "
              "and checks that no trial repeats data")
    else:
        uniques = sorted({r["unique_tokens"] for r in rows})
        print(f"data: {corpus.train_tokens:,} training tokens; unique to each trial (U): "
              f"{', '.join(f'{u:,}' for u in uniques)}; the most epochs of any trial: "
              f"{max((r['epochs'] or 0) for r in rows):.3g}")
    return 0


def _runs_range(cost) -> str:
    """Runs per trial: '12', or '3-12' where a GPU-hour budget gives points their own."""
    low, high = min(cost.runs_of.values()), max(cost.runs_of.values())
    return str(low) if low == high else f"{low}-{high}"


def _print_ladders(experiment, trials) -> None:
    """What the warmup-stable-decay ladders of a data-constrained study save."""
    from quokka_ray.sweep.checks import ladders
    from quokka_ray.sweep.ladder import ladder_of

    groups = ladders(trials) if all(t.ladder for t in trials) else {}
    if not groups:
        return
    trained = from_scratch = 0
    for specs in groups.values():
        plan = ladder_of(experiment, specs)
        trained += plan.steps_trained * plan.stable.batch_tokens
        from_scratch += plan.steps_from_scratch * plan.stable.batch_tokens
    print(f"ladders: {len(groups)}, each a stable phase trained once and the decays branched from "
          f"it: {trained:.3g} training tokens instead of {from_scratch:.3g} "
          f"({trained / from_scratch:.0%}) for every trial from scratch")


def _show(value):
    from quokka_ray.config import is_search_space

    return "searched" if is_search_space(value) else value


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"


def _run(args) -> int:
    from quokka_ray.commands.cost_args import gpu_rate, max_gpu_hours
    from quokka_ray.commands.progress import ProgressBar
    from quokka_ray.config import ConfigError
    from quokka_ray.sweep.costs import format_gpu_hours, plan_cost
    from quokka_ray.sweep.driver import run_experiment
    from quokka_ray.tracking import MlflowStore, runs_page, without_userinfo

    rate, limit = gpu_rate(args), max_gpu_hours(args)
    experiment, trials, file_settings = _load(args.experiment_file, args.set)
    cost = plan_cost(experiment, trials)
    _check_gpu_hours(args.experiment_file, cost, rate, limit)  # before Ray, MLflow and data
    print(f"[quokka] {experiment.name}: {len(trials)} trials", flush=True)
    if rate:
        print(f"[quokka] {'at most ' if cost.upper_bound else ''}"
              f"{format_gpu_hours(rate.gpu_hours(cost.flops))} GPU-hours on {rate.describe()}"
              + (f" (limit {limit:g})" if limit else ""), flush=True)
    try:
        outcome = run_experiment(experiment, trials, tracking_uri=args.tracking_uri,
                                 storage_path=args.storage_path, address=args.address,
                                 file_settings=file_settings, progress=ProgressBar())
    except ConfigError as err:
        raise ConfigError(f"{args.experiment_file}: {err}") from None
    print(f"[quokka] {outcome.finished} trials finished, {outcome.failed} failed")
    print(f"[quokka] checkpoints and Tune state: {without_userinfo(outcome.storage_path)}")
    page = runs_page(outcome.tracking_uri, MlflowStore(outcome.tracking_uri).experiment_id(
        outcome.experiment_name, create=False) or "")
    if outcome.tracking_uri.startswith(("http://", "https://")):
        print(f"[quokka] compare runs: {page}")
    else:
        print(f"[quokka] compare runs: mlflow ui --backend-store-uri {outcome.tracking_uri}, "
              f"then {page}")
    print(f"[quokka] fit the laws: quokka fit {args.experiment_file}"
          + "".join(f" --set {text}" for text in args.set or ())
          + (f" --tracking-uri {outcome.tracking_uri}" if args.tracking_uri else ""))
    return 0 if outcome.failed == 0 else 1


def _fit(args) -> int:
    from quokka_ray.commands.fit_args import loop_options
    from quokka_ray.config import ConfigError

    loop = loop_options(args)  # a bad value stops here, before anything is read or written
    if args.csv:
        from quokka_ray.commands.fit_args import run_csv_fit

        if args.set:
            raise ConfigError(f"--set {args.set[0]}: settings are for an experiment file, "
                              "not for --csv")
        return run_csv_fit(args)
    if not args.experiment:
        raise ValueError("give an experiment file or name, or --csv FILE")
    from quokka_ray.analysis import fit_experiment
    from quokka_ray.tracking import check_tracking_server, resolve_tracking_uri

    name, uri, planned, experiment = args.experiment, args.tracking_uri, None, None
    if args.experiment.endswith(".py") or Path(args.experiment).is_file():
        # The plan of the settings given: the runs of that scale, under its experiment name.
        experiment, trials, _ = _load(args.experiment, args.set)
        name, planned = experiment.name, [t.name for t in trials]
        uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or experiment.tracking_uri
    elif args.set:
        raise ConfigError(f"--set {args.set[0]}: settings are for an experiment file, and "
                          f"{args.experiment!r} is an experiment name")
    if loop.propose is not None and experiment is None:
        raise ValueError(f"--propose {args.propose}: give the experiment file, not its name: "
                         "the proposal copies its data and hyperparameters")
    uri = resolve_tracking_uri(uri)
    check_tracking_server(uri)
    out_dir = Path(args.out or Path("quokka_outputs") / name).resolve()
    extras, captured = _fit_extras(args, loop, experiment, out_dir)
    from quokka_ray.commands.progress import ProgressBar

    # With --json stdout holds the JSON object alone: what the fit and the libraries under it
    # print goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        outcome = fit_experiment(
            name, uri, out_dir, planned=planned, laws=[args.law] if args.law else None,
            n_bootstrap=DEFAULT_FIT_BOOTSTRAP if args.bootstrap is None else args.bootstrap,
            seed=args.seed, progress=ProgressBar(),
            target=experiment.fit_target if experiment is not None else "final_loss", **extras)
        if not args.json:
            print(outcome.summary)
        left = ", ".join(f"{n} {how}" for how, n in sorted(outcome.left_out.items()))
        print(f"[quokka] {outcome.trials} trials fitted" + (f"; left out: {left}" if left else "")
              + f"; report: {outcome.markdown_path}")
        for path in outcome.plot_paths:
            print(f"[quokka] plot: {path}")
        for kind, path in captured["written"]:
            print(f"[quokka] {kind}: {path}")
        print(f"[quokka] logged to MLflow fit run {outcome.fit_run_id}")
    if args.json:
        from quokka_ray.commands.fit_json import experiment_fit_json

        print(json.dumps(experiment_fit_json(
            name, outcome, captured["report"], captured["table"], captured["written"],
            DEFAULT_FIT_BOOTSTRAP if args.bootstrap is None else args.bootstrap, args.seed),
            indent=1, allow_nan=False))
    if loop.propose is not None and not any(k == "proposal" for k, _ in captured["written"]):
        why = "; ".join(f"{label}: {skipped['proposal']}"
                        for label, skipped in outcome.skipped.items() if "proposal" in skipped)
        raise LookupError(f"--propose {args.propose}: no proposal ({why or 'no law fitted'})")
    return 0


def _fit_extras(args, loop, experiment, out_dir: Path) -> tuple[dict, dict]:
    """fit_experiment's predictions, propose, suggest and after for `quokka fit`'s options,
    and what `after` captures: the report, the trial table and the files written (kind, path)."""
    import dataclasses

    from quokka_ray.commands.propose import Sizer, proposal_targets, write_proposal
    from quokka_ray.laws.proposal import PROPOSAL_LAWS, LossPrediction, ProposalRequest

    extras: dict = {}
    writers = []  # (report, table) -> files written from the report
    if experiment is not None and experiment.prediction is not None:
        extras["predictions"] = [LossPrediction(**dataclasses.asdict(experiment.prediction))]
    command = f"quokka fit {args.experiment}" + "".join(
        f" --set {text}" for text in args.set or ())
    if loop.suggest is not None:
        extras["suggest"], write_suggested = _suggest_request(
            loop, experiment, out_dir, command + f" --suggest {loop.suggest} --target "
            f"{args.target}" + (" --suggest-for loss" if loop.suggest_for == "loss" else ""))
        writers.append(("suggestion", write_suggested))
    if loop.propose is not None:
        targets = proposal_targets(experiment, loop.propose, out_dir, loop.propose_out)
        extras["propose"] = ProposalRequest(
            loop.propose, law=args.law if args.law in PROPOSAL_LAWS else None,
            size=Sizer(experiment), files={k: str(t.path) for k, t in targets.items()})

        def write_proposals(report, table) -> list[Path]:
            unique = float(table["unique_tokens"].max()) if "unique_tokens" in table else math.nan
            unique = unique if math.isfinite(unique) else None
            return [write_proposal(experiment, target, report.fits[label]["proposal"],
                                   command=f"{command} --propose {args.propose}",
                                   unique_tokens=unique)
                    for label, target in targets.items()
                    if "proposal" in report.fits.get(label, {})]

        writers.append(("proposal", write_proposals))
    captured: dict = {"written": []}

    def after(report, table) -> list[Path]:
        captured.update(report=report, table=table)  # for --json
        captured["written"] = [(kind, path) for kind, write in writers
                               for path in write(report, table)]
        return [path for _, path in captured["written"]]

    extras["after"] = after
    return extras, captured


def _suggest_request(loop, experiment, out_dir: Path, command: str):
    """--suggest's request and the writer of its experiment files. With the experiment file
    of an IsoFlopStudy, candidates are the runs its own plan would train and check
    (commands/suggestions.py), and the runs suggested at each budget are written as an
    experiment file; a fit by name keeps the ladder's sizes and writes nothing."""
    from quokka_ray.commands.propose import fitted_corpus
    from quokka_ray.commands.suggestions import StudyRuns, suggestion_path, write_suggestions
    from quokka_ray.laws.suggest import SuggestRequest
    from quokka_ray.sweep.spec import IsoFlopStudy

    if experiment is None or not isinstance(experiment.study, IsoFlopStudy):
        return SuggestRequest(loop.suggest, loop.target, loop.suggest_for), lambda *_: []
    corpus = fitted_corpus(experiment)
    runs = StudyRuns(experiment, corpus)
    window = experiment.study.tokens_per_param
    request = SuggestRequest(
        loop.suggest, loop.target, loop.suggest_for, size=runs.size, screen=runs.screen,
        min_tokens_per_param=window[0] if window else None,
        files=lambda label, budget: str(suggestion_path(experiment, label, loop.target, budget,
                                                         out_dir)))

    def write(report, table) -> list[Path]:
        return [path for label, fits in report.fits.items() if fits.get("suggestions")
                and fits["suggestions"].runs
                for path in write_suggestions(experiment, label, fits["suggestions"],
                                              command=command, out_dir=out_dir, corpus=corpus)]

    return request, write


def _workers(text: str) -> int | tuple[int, int]:
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN,MAX, got {text!r}") from None
    if len(parts) == 1 and parts[0] >= 1:
        return parts[0]
    if len(parts) == 2 and 1 <= parts[0] <= parts[1]:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"expected N >= 1 or MIN,MAX with 1 <= MIN <= MAX, got {text!r}")


def _train(args) -> int:
    from dataclasses import replace

    from quokka_ray.data import with_root
    from quokka_ray.sweep.driver import resolve_storage_path
    from quokka_ray.sweep.single_run import run_single, single_run_config

    experiment, trials, _ = _load(args.experiment_file, args.set)
    spec, cfg = single_run_config(experiment, trials, args.trial, args.steps)
    storage = resolve_storage_path(args.storage_path or experiment.storage_path)
    cfg = replace(cfg, data=with_root(cfg.data, storage))
    resources = experiment.resources
    workers = args.workers or resources.workers_per_trial
    print(f"[quokka] training {spec.name} for {cfg.total_steps} steps on {workers} worker(s)",
          file=sys.stderr, flush=True)
    steps = run_single(cfg, workers=workers, use_gpu=resources.use_gpu,
                       cpus_per_worker=resources.cpus_per_worker,
                       max_failures=resources.max_failures, storage_path=storage + "/debug",
                       name=spec.name)
    for row in steps:
        if "train_loss" not in row or "final_loss" in row:
            continue  # evaluation rows: the per-step rows carry the training loss
        line = {"step": row["step"], "loss": row["train_loss"], "tokens": row.get("tokens"),
                **{k: v for k, v in row.items()
                   if k not in ("step", "train_loss", "tokens", "time")}}
        print(json.dumps(line) if args.json else
              f"step {line['step']:>6}  loss {line['loss']:.5f}  tokens {line['tokens']}  "
              f"{line.get('tokens_per_s', 0):,.0f} tokens/s")
    return 0


def _sample(args) -> int:
    from quokka_ray.sampling import sample_from_checkpoint

    experiment, trials, _ = _load(args.experiment_file, args.set)
    for text in sample_from_checkpoint(experiment, trials, args.trial, storage_path=args.storage_path,
                                       num_samples=args.num_samples, steps=args.steps,
                                       seed=args.seed):
        print("-" * 60)
        print(text)
    return 0


def _bench_laws(args) -> int:
    from quokka_ray.commands.bench_laws import main as laws_bench

    return laws_bench((["--quick"] if args.quick else []) + ["--workers", str(args.workers)])


def _bench_ray_train(args) -> int:
    from dataclasses import replace

    from quokka_ray.commands.bench_ray_train import run_ray_train_benchmark
    from quokka_ray.data import with_root
    from quokka_ray.sweep.driver import resolve_storage_path
    from quokka_ray.sweep.single_run import single_run_config

    experiment, trials, _ = _load(args.experiment_file, args.set)
    _, cfg = single_run_config(experiment, trials, args.trial, args.steps)
    storage = resolve_storage_path(args.storage_path or experiment.storage_path)
    cfg = replace(cfg, data=with_root(cfg.data, storage))
    run_ray_train_benchmark(cfg, storage + "/bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
