"""Run an experiment's trials with Ray Tune: grid or Optuna search, optional ASHA, one line
of progress per trial event, resume of an interrupted sweep by running it again, and the
outcome of every trial (finished, stopped early, failed) recorded on its MLflow run."""

from __future__ import annotations

import os
from functools import partial

import ray
from ray import tune

from quokka_ray.sweep.checks import asha_steps, ladders
from quokka_ray.sweep.costs import plan_cost
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.ladder_trial import run_ladder_trial
from quokka_ray.sweep.per_point import PerPointASHA, PerPointSearch
from quokka_ray.sweep.progress import SweepProgress
from quokka_ray.sweep.spec import Experiment
from quokka_ray.sweep.trial import RECORDED, SweepContext, resolve, run_trial
from quokka_ray.tracking import MlflowStore


class TrialOutcomes(tune.Callback):
    """One line per trial event in the driver log, and each trial's outcome on its MLflow run:
    a trial that reached its last step FINISHED; one that Tune stopped before it (ASHA)
    KILLED and tagged stopped_early; one whose loss diverged, or that raised, FAILED (tagged
    diverged or failed). `quokka fit` fits only the finished ones."""

    def __init__(self, context: SweepContext, total_trials: int):
        self.context = context
        self.progress = SweepProgress(total_trials)

    def setup(self, **info):
        # Also after a restore, which brings back this callback as pickled by the last driver.
        self.progress.reset()

    def _say(self, trials, trial, event: str, extra: str = "", ended: bool = False) -> None:
        done = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        if ended:
            done.add(trial.trial_id)
        running = {t.trial_id for t in trials if t.status == "RUNNING"} - done
        if not ended and trial.trial_id not in done:
            running.add(trial.trial_id)
        line = self.progress.line(len(done), len(running))
        print(f"[quokka {line}] {self._name(trial)} {event} {extra}".rstrip(), flush=True)

    def _name(self, trial) -> str:
        if "ladder" in trial.config:
            return f"ladder {trial.config['ladder']}"
        return resolve(trial.config, self.context)[2] if "trial" in trial.config else trial.trial_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self._say(trials, trial, "started")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(RECORDED):
            self._say(trials, trial, "had ended before the sweep was interrupted: not trained again")
            return
        parts = [f"{k}={result[k]:.4g}" for k in ("step", "train_loss", "val_loss") if k in result]
        self._say(trials, trial, "reported", " ".join(parts))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if "ladder" in trial.config:  # a ladder records the outcomes of its own runs
            self._say(trials, trial, "finished", ended=True)
            return
        _, train, name = resolve(trial.config, self.context)
        say = partial(self._say, trials, trial, ended=True)
        step = int((trial.last_result or {}).get("step", 0))
        if (trial.last_result or {}).get("diverged"):
            say("DIVERGED", f"at step {step}: the loss is not finite; not retried")
            self._record(name, "FAILED", "diverged")
        elif step >= train.total_steps:
            say("finished")
            self._record(name, "FINISHED", "finished")
        else:
            say("stopped early", f"at step {step} of {train.total_steps}")
            self._record(name, "KILLED", "stopped_early")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(trials, trial, "FAILED", f"(see {trial.local_path})", ended=True)
        if "ladder" not in trial.config:
            self._record(self._name(trial), "FAILED", "failed")

    def _record(self, name: str, status: str, outcome: str) -> None:
        """End the trial's MLflow run. The store's calls wait for a tracking server that is
        away; one that stays away longer than that leaves the run unfinished (the next
        `quokka run` resumes the trial's run) instead of ending the sweep."""
        store = MlflowStore(self.context.tracking_uri)
        try:
            run_id = store.find_trial_run(self.context.experiment.name, name)
            if run_id:
                store.end_run(run_id, status, outcome=outcome)
        except Exception as err:  # noqa: BLE001 - the sweep goes on without this record
            print(f"[quokka] {name}: could not record its outcome ({outcome}) in MLflow: "
                  f"{str(err).splitlines()[0][:200]}", flush=True)


def default_concurrency(experiment: Experiment) -> int | None:
    """Trials to run at once. On CPUs, what the cluster holds now: Tune does not count Train's
    workers, and trials beyond that would start and wait. On GPUs, no cap: each waiting trial's
    placement group is demand that the autoscaler answers with GPU nodes."""
    if experiment.resources.max_concurrent_trials:
        return experiment.resources.max_concurrent_trials
    if experiment.resources.use_gpu:
        return None
    available = ray.cluster_resources()
    workers = experiment.resources.max_workers
    return max(1, int(available.get("CPU", 1) // (workers * experiment.resources.cpus_per_worker)))


def run_sweep(experiment: Experiment, trials: list[TrialSpec], context: SweepContext,
              experiment_path: str) -> tune.ResultGrid:
    """Run (or resume, if `experiment_path` holds this sweep) every trial."""
    search = experiment.search
    hyper = experiment.hyperparameters
    # Costliest first: Tune starts trials in grid order, so the sweep's last minutes are spent
    # on short trials side by side rather than on one long trial alone.
    by_cost = sorted(trials, key=lambda t: -t.exact_flops_per_token * (t.tokens or t.target_tokens))
    param_space: dict = {"trial": tune.grid_search([t.name for t in by_cost])}
    run = run_trial
    if any(spec.ladder for spec in trials):
        # One Tune trial per ladder: its runs depend on its stable phase, so they run in turn.
        param_space, run = {"ladder": tune.grid_search(list(ladders(trials)))}, run_ladder_trial
    if hyper.searched:
        # Grid values are expanded into trials by the plan; only random spaces reach Tune.
        random = {k: getattr(hyper, k) for k in trials[0].searched}
        if random:
            param_space["hp"] = random
    search_alg = None
    runs_of = plan_cost(experiment, trials).runs_of  # Tune's runs of each trial
    if search.algorithm == "optuna":
        # One search per study point; the searcher names each trial's point itself.
        search_alg = PerPointSearch(runs_of, search.metric, search.mode, experiment.seed)
        del param_space["trial"]
    scheduler = None
    if search.scheduler == "asha":
        grace, _ = asha_steps(experiment, trials)
        scheduler = PerPointASHA.for_plan(experiment, trials, grace)
    # The trial's own process only waits on its TorchTrainer, whose workers hold the CPUs; a
    # bundle of no CPU is refused as empty, so it asks for a token megabyte of memory.
    trainable = tune.with_resources(partial(run, context=context),
                                    resources={"cpu": 0, "memory": 1e6})
    tune_root = experiment_path.rsplit("/", 1)[0]
    # Tune's newer console output prints its configuration box and a TensorBoard hint even at
    # verbose=0; the older one is silent there, and the sweep prints its own progress lines.
    if os.environ.get("QUOKKA_VERBOSE") != "1":
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    tune_trials = len(param_space["ladder"]["grid_search"]) if run is run_ladder_trial \
        else sum(runs_of.values())
    outcomes = TrialOutcomes(context, total_trials=tune_trials)
    if tune.Tuner.can_restore(experiment_path):
        print(f"[quokka] resuming the sweep stored at {experiment_path}", flush=True)
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, param_space=param_space,
                                   resume_unfinished=True, resume_errored=True)
        # The restored RunConfig holds the callbacks the last driver pickled, with its sweep
        # context (tracking URI, sweep run, settings): outcomes go where this run records them.
        # Tune has no public way to replace them (ray issue 41364).
        tuner._local_tuner.get_run_config().callbacks = [outcomes]
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=search.metric, mode=search.mode,
                # With Optuna, the searcher hands out every point's trials.
                num_samples=tune_trials if search_alg else search.num_samples,
                search_alg=search_alg, scheduler=scheduler,
                max_concurrent_trials=default_concurrency(experiment),
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(name=experiment.name, storage_path=tune_root,
                                      callbacks=[outcomes], verbose=0),
        )
    return tuner.fit()


def _trial_name(trial) -> str:
    suffix = f"-{trial.trial_id[-5:]}" if "hp" in trial.config else ""
    return f"{trial.config.get('trial') or trial.config['ladder']}{suffix}"


def summarize(results: tune.ResultGrid) -> tuple[int, int]:
    """(trials that ended without error, trials that failed)."""
    errors = sum(1 for r in results if r.error is not None)
    return len(results) - errors, errors
