"""`quokka run`: resolve where things go, check everything that can be checked before anything
starts (the tracking server is reachable, the experiment's name holds no other sweep), prepare
the data shards under the storage path (with Ray Data, so Ray starts first when they are not
there yet), check that the corpus is large enough, then open (or reopen) the sweep's MLflow run
and run the trials through Tune. Every check on the user's input comes before the MLflow run."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from quokka_ray.config import ConfigError
from quokka_ray.data import prepare_shards, read_manifest, shard_dir, with_root
from quokka_ray.reachability import unreachable_reason
from quokka_ray.sweep.capacity import check_capacity
from quokka_ray.sweep.checks import check_corpus, corpus_from_manifest
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.spec import Experiment
from quokka_ray.sweep.stored_plan import check_unchanged, plan_record, read_plan, write_plan
from quokka_ray.sweep.trial import SweepContext
from quokka_ray.tracking import (
    DEFAULT_TRACKING_URI,
    MlflowStore,
    check_tracking_server,
    git_commit,
    is_relative_sqlite,
    resolve_tracking_uri,
    store_exists,
)


@dataclass(frozen=True)
class SweepOutcome:
    experiment_name: str
    tracking_uri: str
    storage_path: str
    parent_run_id: str
    finished: int
    failed: int


def in_ray_job_copy() -> bool:
    """True when running in the temporary copy of a working directory that `ray job submit
    --working-dir` makes: relative paths there vanish with the job."""
    return "runtime_resources" in Path.cwd().parts and "working_dir_files" in Path.cwd().parts


def resolve_storage_path(path: str) -> str:
    if "://" in path:
        return path
    if not os.path.isabs(path) and in_ray_job_copy():
        raise ConfigError(
            f"storage path {path!r} is relative, and this job runs in a temporary copy of the "
            "working directory that is deleted with the job: pass an absolute path on shared "
            "storage or a URI (--storage-path /shared/quokka_runs or s3://bucket/quokka_runs)")
    return str(Path(path).expanduser().resolve())


def resolve_tracking(explicit: str | None, experiment: Experiment) -> str:
    uri = (explicit or os.environ.get("MLFLOW_TRACKING_URI") or experiment.tracking_uri
           or DEFAULT_TRACKING_URI)
    if is_relative_sqlite(uri) and in_ray_job_copy():
        raise ConfigError(
            "the MLflow store would be a relative SQLite file inside the job's temporary copy of "
            "the working directory: pass --tracking-uri (an http:// server, or sqlite:////abs/path)")
    return resolve_tracking_uri(uri)


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Raise ConnectionError (one line) if a Ray cluster's address does not answer: `ray.init`
    would retry for many minutes before it gave up."""
    if address in (None, "", "local", "auto"):
        return
    reason = unreachable_reason(address, timeout_s=timeout_s)
    if reason:
        raise ConnectionError(f"Ray cluster at {address} is unreachable ({reason}): start it, "
                              "or pass another --address (or none, for a local cluster)")


def run_experiment(experiment: Experiment, trials: list[TrialSpec], *,
                   tracking_uri: str | None = None, storage_path: str | None = None,
                   address: str | None = None, file_settings: dict | None = None,
                   progress: Callable[[str, int, int | None], None] | None = None
                   ) -> SweepOutcome:
    """`file_settings`: what the experiment file was given with `--set` (defaults included),
    stored with the plan so that a sweep continued with other settings is refused.
    `progress`: told of each step of the data preparation (data.shards.Progress)."""
    storage = resolve_storage_path(storage_path or experiment.storage_path)
    uri = resolve_tracking(tracking_uri, experiment)
    data = with_root(experiment.data, storage)  # shards under the storage path unless named
    experiment = replace(experiment, data=data)
    experiment_path = f"{storage}/tune/{experiment.name}"
    plan = plan_record(trials, file_settings)

    # Everything that can fail on the user's input fails here, before any MLflow run exists;
    # before Ray starts too, unless the shards must be prepared first (Ray Data).
    address = address or os.environ.get("RAY_ADDRESS")
    check_tracking_server(uri)
    check_ray_address(address)
    check_unchanged(read_plan(experiment_path), plan, experiment=experiment.name,
                    where=experiment_path)
    manifest = read_manifest(data)
    if manifest is None:
        _start_ray(address)
        print(f"[quokka] preparing data shards in {shard_dir(data)} (Ray Data)", flush=True)
        prepare_shards(data, workers=None, progress=progress)
        manifest = read_manifest(data)
    corpus = corpus_from_manifest(manifest)
    check_corpus(experiment, trials, corpus)
    store = MlflowStore(uri)
    if store_exists(uri):
        check_unchanged(store.sweep_plan(experiment.name), plan, experiment=experiment.name,
                        where=f"MLflow {uri}")

    from quokka_ray.sweep.tune_driver import run_sweep, summarize

    _start_ray(address)
    # A cluster joined by address may be grown by its autoscaler; one started here is not.
    check_capacity(experiment.resources, can_grow=bool(address))
    parent = store.sweep_run(experiment.name, plan, {
        "experiment": experiment.name, "trials": len(trials),
        "study": type(experiment.study).__name__, "search": experiment.search.algorithm,
        "storage_path": storage, **prediction_params(experiment),
        **{f"set.{k}": v for k, v in (file_settings or {}).items()}})
    print(f"[quokka] MLflow: experiment {experiment.name!r}, sweep run {parent} in {uri}", flush=True)
    context = SweepContext(experiment=experiment, trials={t.name: t for t in trials},
                           tracking_uri=uri, storage_path=storage, parent_run_id=parent,
                           git_commit=git_commit(), corpus=corpus)
    status = "FAILED"
    try:
        write_plan(experiment_path, plan)
        results = run_sweep(experiment, trials, context, experiment_path)
        finished, failed = summarize(results)
        status = "FINISHED" if failed == 0 else "FAILED"
        store.describe_sweep(parent, experiment.name)
    finally:
        store.end_run(parent, status)
    return SweepOutcome(experiment.name, uri, storage, parent, finished, failed)


def prediction_params(experiment: Experiment) -> dict[str, object]:
    """The sweep run's record of what a fitted law predicted for it (a proposed experiment),
    so that the MLflow UI shows it beside the trials' losses."""
    p = experiment.prediction
    if p is None:
        return {}
    return {"prediction.fitted_experiment": p.fitted_experiment, "prediction.law": p.law,
            "prediction.objective": p.objective, "prediction.budget_flops": p.budget_flops,
            "prediction.final_loss": p.final_loss,
            "prediction.final_loss_interval": p.final_loss_interval or ""}


def _start_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    context = ray.init(address=address) if address else start_local_ray()
    # Ray's own notice of it is quiet by default (quokka_ray/commands/verbosity.py).
    url = context.dashboard_url
    if url:
        print(f"[quokka] Ray dashboard: {url if '://' in url else 'http://' + url}", flush=True)


#: Ray Train settings for a cluster private to this machine. Nothing preempts it, so Train's
#: preemption watcher (one more actor process per run, started as the run starts) is left
#: out; its controller polls the workers every 0.5 s instead of 2 s, so a finished run's
#: slot is free sooner (the poll is a cheap call to a handful of local workers).
LOCAL_TRAIN_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
                   "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


def start_local_ray(**init_args):
    """A private Ray cluster on this machine, even when another one runs here. Its processes
    are told where its dashboard is: Ray Train's placement-group cleaner asks the State API,
    which would otherwise guess among every Ray cluster on the machine, fail, and leave a
    stopped trial's workers' CPUs reserved for good. Returns ray.init's context."""
    import ray

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Train reads its settings in the process that calls fit(): this one (`quokka train`) or
    # a Tune trial's, which takes the job's environment.
    for name, value in LOCAL_TRAIN_ENV.items():
        os.environ.setdefault(name, value)
    env = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
    env.update({name: os.environ[name] for name in LOCAL_TRAIN_ENV})
    return ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1",
                    dashboard_port=port, runtime_env={"env_vars": env}, **init_args)
