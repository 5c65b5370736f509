"""`quokka bench search`: what Optuna with ASHA costs, and what it finds, against the full grid.

One study point of an experiment (one trial of its plan: objective, model, tokens and every
hyperparameter but the peak learning rate) is swept through the path of `quokka run` (Ray
Tune, Ray Train, MLflow in a SQLite store in a scratch folder), each sweep under its own
experiment name:

- the grid: the learning rate at `grid_points` log-spaced values of a range, every run to the
  end, at the first seed (or at every seed);
- per seed, the search: Optuna's TPE (seeded) over the same range, log-uniform, with a budget
  of trials, ASHA stopping the runs it ranks low at the evaluation steps it compares.

The experiment's seed is also the seed of the initial weights, the data order and the
diffusion noise, so a search at another seed than the grid's trains other noise;
`grid_per_seed` runs a grid at each seed to measure each search against its own;
`validation_sequences` sets the point's validation set for all the sweeps (another size than
the experiment's names them with -valN). The best loss of each is the lowest final validation
loss of a run that trained to its end; the training tokens are those the runs' MLflow records hold (the `tokens` metric of the last
step each run logged, an ASHA-stopped run's included), never those of the plan."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from quokka_ray.config import ConfigError

#: What the search must reach: within this relative gap of the grid's best validation loss...
GOAL_GAP = 0.01
#: ...with at most this share of the grid's training tokens.
GOAL_TOKEN_SHARE = 0.35


@dataclass(frozen=True)
class RunRecord:
    """One training run of a sweep, as its MLflow run records it."""

    name: str
    lr: float
    outcome: str
    """finished, stopped_early, diverged or failed (the sweep's tag)."""
    planned_steps: int
    trained_steps: int
    trained_tokens: int
    val_loss: float | None
    """Final validation loss: only for a run that trained to its last step."""


@dataclass(frozen=True)
class SweepRecord:
    experiment: str
    seed: int
    runs: list[RunRecord]

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.val_loss is not None]

    @property
    def best(self) -> RunRecord | None:
        return min(self.finished, key=lambda r: r.val_loss, default=None)

    @property
    def tokens(self) -> int:
        """Every token trained, by runs stopped early or failed too: they were paid for."""
        return sum(r.trained_tokens for r in self.runs)

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return counts

    def stopped_at(self) -> dict[int, int]:
        """{step: runs stopped early there}: the rungs where ASHA compared and stopped runs."""
        steps: dict[int, int] = {}
        for r in self.runs:
            if r.outcome == "stopped_early":
                steps[r.trained_steps] = steps.get(r.trained_steps, 0) + 1
        return dict(sorted(steps.items()))


@dataclass(frozen=True)
class SeedResult:
    seed: int
    grid: SweepRecord
    search: SweepRecord

    @property
    def gap(self) -> float | None:
        """Relative excess of the search's best validation loss over the grid's (0.01 = 1%)."""
        grid, search = self.grid.best, self.search.best
        if grid is None or search is None:
            return None
        return search.val_loss / grid.val_loss - 1.0

    @property
    def token_share(self) -> float:
        return self.search.tokens / self.grid.tokens if self.grid.tokens else math.inf

    def met(self, max_gap: float = GOAL_GAP, max_share: float = GOAL_TOKEN_SHARE) -> bool:
        return self.gap is not None and self.gap <= max_gap and self.token_share <= max_share


def run_records(rows: list[dict]) -> list[RunRecord]:
    """RunRecords from the rows of `MlflowStore.trial_runs` (params as text, latest metrics).
    A run's trained tokens are its latest `tokens` metric (MLflow's latest value is that of
    the highest step logged); a run that logged no step trained none that it recorded."""
    records = []
    for row in rows:
        planned = int(float(row["steps"]))
        batch_tokens = int(float(row["batch_tokens"]))
        tokens = _number(row.get("tokens"))
        tokens = 0 if tokens is None else int(tokens)
        trained = tokens // batch_tokens
        val = _number(row.get("val_loss"))
        outcome = str(row.get("outcome") or "unknown")
        ended = outcome == "finished" and trained >= planned
        records.append(RunRecord(name=str(row["trial_name"]), lr=float(row["lr"]),
                                 outcome=outcome, planned_steps=planned, trained_steps=trained,
                                 trained_tokens=tokens,
                                 val_loss=val if ended and val is not None else None))
    return sorted(records, key=lambda r: r.lr)


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def log_spaced(low: float, high: float, points: int) -> list[float]:
    """`points` learning rates from low to high, evenly spaced in log, to 4 significant digits."""
    if points == 1:
        return [low]
    ratio = (high / low) ** (1 / (points - 1))
    return [float(f"{low * ratio ** i:.4g}") for i in range(points)]


def asha_rungs(grace: int, max_t: int, reduction_factor: float) -> list[int]:
    """The steps at which Ray's ASHA compares runs (its milestones grace * rf^k, k = 0, 1, ...,
    as many as its bracket makes), below max_t: a run reaching max_t has finished."""
    count = int(math.log(max_t / grace) / math.log(reduction_factor) + 1)
    return [s for s in (round(grace * reduction_factor ** k) for k in range(count)) if s < max_t]


def default_eval_every(steps: int, reduction_factor: float) -> int:
    """Evaluations (ASHA's grace period and rungs) every steps / rf^2: ASHA compares the runs
    at 1/rf^2 and at 1/rf of their length, and a run it keeps past both trains to the end. A
    rung just short of the end would stop runs that had cost nearly all their tokens."""
    return max(1, math.ceil(steps / reduction_factor ** 2))


@dataclass(frozen=True)
class BenchSettings:
    seeds: list[int]
    lr_range: tuple[float, float]
    grid_points: int
    search_trials: int
    reduction_factor: float
    eval_every: int | None = None
    """None: default_eval_every of the study point's steps."""
    trial: str | None = None
    """The study point: a trial of the experiment's plan (None: its first)."""
    grid_per_seed: bool = False
    """Run the grid at every seed (each search is then measured against the grid that trained
    with its seed), not at the first seed alone."""
    validation_sequences: int | None = None
    """The point's validation set, in sequences (`DataConfig.validation_sequences`), for the
    grid and the searches alike; None: the experiment's."""

    def __post_init__(self) -> None:
        low, high = self.lr_range
        if not 0 < low < high:
            raise ConfigError(f"--lr-range: expected 0 < LOW < HIGH, got {low:g} {high:g}")
        if self.grid_points < 2:
            raise ConfigError(f"--grid-points: expected at least 2, got {self.grid_points}")
        if self.search_trials < 1:
            raise ConfigError(f"--search-trials: expected at least 1, got {self.search_trials}")
        if self.reduction_factor <= 1:
            raise ConfigError(f"--reduction-factor: expected a factor > 1, got "
                              f"{self.reduction_factor:g}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(f"--eval-every: expected a positive step count, got {self.eval_every}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds: expected distinct seeds, got {self.seeds}")
        if self.validation_sequences is not None and self.validation_sequences < 1:
            raise ConfigError(f"--validation-sequences: expected at least 1, got "
                              f"{self.validation_sequences}")


def study_point(experiment, trials, trial: str | None):
    """The trial whose study point the benchmark sweeps (the plan's first by default)."""
    if trial is None:
        spec = trials[0]
    else:
        spec = next((t for t in trials if t.name == trial), None)
        if spec is None:
            raise ConfigError(f"--trial {trial}: no such trial in the plan of "
                              f"{experiment.name!r} (see quokka plan)")
    if spec.ladder or spec.tokens is None:
        raise ConfigError(f"--trial {spec.name}: the benchmark needs a trial of fixed length "
                          "that is no part of a warmup-stable-decay ladder")
    others = [k for k in spec.searched if k != "lr"]
    if others:
        raise ConfigError(f"--trial {spec.name}: {', '.join(others)} searched at random; the "
                          "benchmark searches the learning rate alone (fix them with --set)")
    return spec


def point_experiment(experiment, spec, *, name: str, seed: int, lr, search, eval_every: int,
                     validation_sequences: int | None = None):
    """The experiment of one study point (`spec`'s model, tokens, objective, data and every
    hyperparameter but lr, which is `lr`), with its own name, seed, search and evaluations,
    and `validation_sequences` held-out sequences (None: the experiment's)."""
    from quokka_ray.sweep import Experiment, FixedStudy, IsoFlopStudy

    n = spec.non_embedding_params
    study = (replace(experiment.study, budgets_flops=[spec.budget_flops], model_sizes=[n])
             if isinstance(experiment.study, IsoFlopStudy)
             else FixedStudy(model_sizes=[n], tokens=[spec.target_tokens]))
    data = (experiment.data if validation_sequences is None
            else replace(experiment.data, validation_sequences=validation_sequences))
    derived: Experiment = replace(
        experiment, name=name, seed=seed, study=study, objectives=[spec.objective], data=data,
        hyperparameters=replace(spec.hyperparameters, lr=lr), search=search,
        evaluation=replace(experiment.evaluation, eval_every_steps=eval_every), prediction=None)
    return derived


def checked_point(path: str, experiment, spec):
    """The derived experiment's plan, checked as `quokka run` checks it, training the very
    model and tokens of `spec`."""
    from quokka_ray.sweep.loader import checked_trials

    trials = checked_trials(path, experiment)
    for t in trials:
        if t.model != spec.model or t.tokens != spec.tokens:
            raise ConfigError(f"--trial {spec.name}: its study point could not be rebuilt "
                              f"({t.name} trains N={t.non_embedding_params:,} on {t.tokens} "
                              f"tokens, not N={spec.non_embedding_params:,} on {spec.tokens})")
    return trials


def plan_sweeps(path: str, experiment, trials, settings: BenchSettings):
    """[(seed, (grid experiment, its trials) or None, (search experiment, its trials))] (a
    grid at the first seed, or at every seed) and the shape of the sweeps, with every check of
    `quokka run` made before anything starts."""
    from ray import tune

    from quokka_ray.sweep import Search
    from quokka_ray.sweep.checks import asha_steps
    from quokka_ray.sweep.grid import train_config

    spec = study_point(experiment, trials, settings.trial)
    low, high = settings.lr_range
    # The point's length does not depend on its learning rate, which may be searched.
    steps = train_config(spec, experiment, {"lr": low} if spec.searched else None).total_steps
    every = settings.eval_every or default_eval_every(steps, settings.reduction_factor)
    grid_lrs = log_spaced(low, high, settings.grid_points)
    search = Search(algorithm="optuna", num_samples=settings.search_trials, metric="val_loss",
                    scheduler="asha", reduction_factor=settings.reduction_factor)
    validation = (experiment.data.validation_sequences if settings.validation_sequences is None
                  else settings.validation_sequences)
    # Another validation set is another sweep: its runs (named by their settings, the data's
    # included) are others, and so is its experiment, so that one scratch folder holds both
    # and neither is refused as the other continued with changed settings.
    tag = "" if validation == experiment.data.validation_sequences else f"-val{validation}"
    plans = []
    for seed in settings.seeds:
        grid = point_experiment(experiment, spec, name=f"{experiment.name}-lrgrid{tag}-s{seed}",
                                seed=seed, lr=tune.grid_search(grid_lrs), search=Search(),
                                eval_every=every, validation_sequences=validation)
        optuna = point_experiment(experiment, spec, name=f"{experiment.name}-optuna{tag}-s{seed}",
                                  seed=seed, lr=tune.loguniform(low, high), search=search,
                                  eval_every=every, validation_sequences=validation)
        own_grid = settings.grid_per_seed or seed == settings.seeds[0]
        plans.append((seed, (grid, checked_point(path, grid, spec)) if own_grid else None,
                      (optuna, checked_point(path, optuna, spec))))
    grace, max_t = asha_steps(plans[0][2][0], plans[0][2][1])
    return spec, plans, {"eval_every": every, "steps": steps, "grid_lrs": grid_lrs,
                         "validation_sequences": validation,
                         "asha_grace": grace, "asha_max_t": max_t,
                         "asha_rungs": asha_rungs(grace, max_t, settings.reduction_factor)}


def run_benchmark(spec, plans, shape: dict, settings: BenchSettings, file_settings: dict,
                  scratch: Path) -> dict:
    """Run the sweeps of `plan_sweeps` (grid and search, for each seed) with `quokka run`'s
    driver, in a private Ray cluster, and return the benchmark's record."""
    from quokka_ray.sweep.driver import run_experiment
    from quokka_ray.tracking import MlflowStore

    scratch.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(scratch / 'mlflow.db').resolve()}"
    storage = str((scratch / "runs").resolve())  # one corpus, prepared once, for every sweep
    print(f"[bench] study point {spec.name} ({spec.kind}, N={spec.non_embedding_params:,}, "
          f"D={spec.tokens:,}, {shape['steps']} steps); grid of {len(shape['grid_lrs'])} "
          f"learning rates {shape['grid_lrs'][0]:g} to {shape['grid_lrs'][-1]:g}; Optuna TPE, "
          f"{settings.search_trials} trials, ASHA (reduction factor "
          f"{settings.reduction_factor:g}) comparing val_loss at steps "
          f"{', '.join(map(str, shape['asha_rungs']))} of {shape['asha_max_t']}; "
          f"validation set of {shape['validation_sequences']} sequences; MLflow {uri}",
          flush=True)
    # What shapes a sweep beyond its trials' settings, stored with its plan: the same scratch
    # folder given other settings is refused rather than mixed.
    searched = {"bench.study_point": spec.name, "bench.search_trials": settings.search_trials,
                "bench.reduction_factor": settings.reduction_factor}
    try:
        for _, grid, (search, search_trials) in plans:
            if grid is not None:
                run_experiment(*grid, tracking_uri=uri, storage_path=storage,
                               file_settings={**file_settings, "bench.study_point": spec.name})
            run_experiment(search, search_trials, tracking_uri=uri, storage_path=storage,
                           file_settings={**file_settings, **searched})
    finally:
        import ray

        ray.shutdown()
    store = MlflowStore(uri)

    def record(derived) -> SweepRecord:
        table = store.trial_runs(derived.name)
        return SweepRecord(derived.name, derived.seed, run_records(table.to_dict("records")))

    grids = {seed: record(grid[0]) for seed, grid, _ in plans if grid is not None}
    first = grids[plans[0][0]]
    results = [SeedResult(seed, grids.get(seed, first), record(search[0]))
               for seed, _, search in plans]
    return bench_record(spec.name, settings, shape, results, uri)


def bench_record(point: str, settings: BenchSettings, shape: dict, results: list[SeedResult],
                 tracking_uri: str) -> dict:
    """The benchmark's JSON: settings, the sweeps' runs, and per seed the comparison."""

    def sweep(record: SweepRecord) -> dict:
        best = record.best
        return {"experiment": record.experiment, "seed": record.seed, "tokens": record.tokens,
                "best_val_loss": best.val_loss if best else None,
                "best_lr": best.lr if best else None, "outcomes": record.outcomes(),
                "stopped_at_steps": {str(k): v for k, v in record.stopped_at().items()},
                "runs": [dataclasses.asdict(r) for r in record.runs]}

    return {"study_point": point, "tracking_uri": tracking_uri,
            "settings": dataclasses.asdict(settings),
            **shape, "goal": {"max_gap": GOAL_GAP, "max_token_share": GOAL_TOKEN_SHARE},
            "seeds": [{"seed": r.seed, "gap": r.gap, "token_share": r.token_share,
                       "met": r.met(), "grid": sweep(r.grid), "search": sweep(r.search)}
                      for r in results],
            "met_at": sum(r.met() for r in results)}


def table(results: list[SeedResult], validation_sequences: int | None = None) -> str:
    """One line per seed: the grid's best and the search's, the gap, the search's tokens as a
    share of the grid's, its runs by outcome, and whether it met the goal; the last line also
    names the validation set's size, when given."""
    header = (f"{'seed':>4} {'grid seed':>9} {'grid best':>10} {'at lr':>8} {'search best':>11} {'at lr':>8} "
              f"{'gap':>7} {'search tokens':>13} {'of grid':>8} {'runs f/s/x':>10}  goal")
    lines = [header, "-" * len(header)]
    for r in results:
        g, s = r.grid.best, r.search.best
        counts = r.search.outcomes()
        runs = (f"{counts.get('finished', 0)}/{counts.get('stopped_early', 0)}/"
                f"{len(r.search.runs) - counts.get('finished', 0) - counts.get('stopped_early', 0)}")
        lines.append(
            f"{r.seed:>4} {r.grid.seed:>9} {_loss(g):>10} {_lr(g):>8} {_loss(s):>11} {_lr(s):>8} "
            f"{'-' if r.gap is None else f'{r.gap:+.2%}':>7} {r.search.tokens:>13,} "
            f"{r.token_share:>8.1%} {runs:>10}  {'met' if r.met() else 'missed'}")
    met = sum(r.met() for r in results)
    lines.append(f"goal (best val loss within {GOAL_GAP:.0%} of the grid's, at most "
                 f"{GOAL_TOKEN_SHARE:.0%} of its training tokens): met at {met} of "
                 f"{len(results)} seeds; grid tokens: "
                 f"{', '.join(f'{g.tokens:,} (seed {g.seed})' for g in _grids(results))}"
                 + ("" if validation_sequences is None
                    else f"; validation set: {validation_sequences} sequences"))
    return "\n".join(lines)


def _grids(results: list[SeedResult]) -> list[SweepRecord]:
    return list({r.grid.experiment: r.grid for r in results}.values())


def _loss(run: RunRecord | None) -> str:
    return "-" if run is None else f"{run.val_loss:.4f}"


def _lr(run: RunRecord | None) -> str:
    return "-" if run is None else f"{run.lr:.3g}"


def results_from_record(record: dict) -> list[SeedResult]:
    """The SeedResults of a benchmark's JSON (to print its table again)."""
    def sweep(data: dict) -> SweepRecord:
        return SweepRecord(data["experiment"], data["seed"],
                           [RunRecord(**r) for r in data["runs"]])

    return [SeedResult(s["seed"], sweep(s["grid"]), sweep(s["search"])) for s in record["seeds"]]


def add_bench_search_parser(benches) -> None:
    bench = benches.add_parser(
        "search", help="Optuna + ASHA against the full learning-rate grid: best val loss and "
        "training tokens, per seed",
        description="Sweeps one study point's learning rate as a full grid and as an Optuna "
        "(TPE) search with ASHA, per seed, through Ray Tune, Ray Train and MLflow (a SQLite "
        "store in the scratch folder), and compares their best validation losses and the "
        "training tokens they used.")
    bench.add_argument("experiment_file")
    bench.add_argument("--set", action="append", metavar="NAME=VALUE",
                       help="a setting of the experiment file (repeatable)")
    bench.add_argument("--trial", help="the study point: a trial of the plan, whose model, "
                       "tokens and hyperparameters but lr are swept (default: the first)")
    bench.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    bench.add_argument("--lr-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=(1e-3, 1e-1), help="learning-rate range of grid and search")
    bench.add_argument("--grid-points", type=int, default=12,
                       help="log-spaced learning rates of the grid (default 12)")
    bench.add_argument("--search-trials", type=int, default=6,
                       help="Optuna's budget of trials per seed (default 6)")
    bench.add_argument("--reduction-factor", type=float, default=4.0,
                       help="ASHA's reduction factor (default 4)")
    bench.add_argument("--eval-every", type=int, default=None,
                       help="steps between evaluations, ASHA's grace period and rung spacing "
                       "(default: the run's steps / reduction_factor^2)")
    bench.add_argument("--grid-per-seed", action="store_true",
                       help="run the grid at every seed, not at the first alone: the seed also "
                       "sets the initial weights, data order and noise, so each search is then "
                       "measured against a grid that trained with its seed")
    bench.add_argument("--validation-sequences", type=int, default=None, metavar="N",
                       help="held-out sequences of the point's validation loss, for the grid "
                       "and the searches alike (default: the experiment's); sweeps with another "
                       "count than the experiment's are other experiments, named with -valN")
    bench.add_argument("--scratch", help="folder of the MLflow store, checkpoints, Tune state "
                       "and data shards (default: a new temporary folder)")
    bench.add_argument("--json", dest="json_path",
                       help="where to write the record (default: SCRATCH/bench_search.json)")
    bench.set_defaults(handler=bench_search_command)


def bench_search_command(args: argparse.Namespace) -> int:
    from quokka_ray.sweep.loader import checked_trials, load_experiment_file
    from quokka_ray.sweep.settings import parse_assignments

    if args.seeds < 1:
        raise ConfigError(f"--seeds: expected at least 1, got {args.seeds}")
    experiment, file_settings = load_experiment_file(args.experiment_file,
                                                     parse_assignments(args.set))
    trials = checked_trials(args.experiment_file, experiment)
    settings = BenchSettings(seeds=list(range(args.seeds)), lr_range=tuple(args.lr_range),
                             grid_points=args.grid_points, search_trials=args.search_trials,
                             reduction_factor=args.reduction_factor, eval_every=args.eval_every,
                             trial=args.trial, grid_per_seed=args.grid_per_seed,
                             validation_sequences=args.validation_sequences)
    spec, plans, shape = plan_sweeps(args.experiment_file, experiment, trials, settings)
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="quokka-bench-search-"))
    record = run_benchmark(spec, plans, shape, settings, file_settings, scratch)
    out = Path(args.json_path or scratch / "bench_search.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(table(results_from_record(record), record["validation_sequences"]))
    for s in record["seeds"]:
        print(f"seed {s['seed']}: ASHA stopped runs at steps "
              f"{s['search']['stopped_at_steps'] or 'none'}; grid best lr "
              f"{s['grid']['best_lr']}, search best lr {s['search']['best_lr']}")
    print(f"[bench] record: {out}")
    return 0
