"""`quokka run`: resolve where things go, open the sweep's MLflow parent run, start or join
Ray, and run the trials through Tune."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import ray

from quokka_ray.data import prepare_shards
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.spec import Experiment
from quokka_ray.sweep.trial import SweepContext
from quokka_ray.sweep.tune_driver import run_sweep, summarize
from quokka_ray.sweep.validation import ExperimentError
from quokka_ray.tracking import (
    DEFAULT_TRACKING_URI,
    MlflowStore,
    git_commit,
    is_relative_sqlite,
    resolve_tracking_uri,
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
        raise ExperimentError(
            f"storage path {path!r} is relative, and this job runs in a temporary copy of the "
            "working directory that is deleted with the job: pass an absolute path on shared "
            "storage or a URI (--storage-path /shared/quokka_runs or s3://bucket/quokka_runs)")
    return str(Path(path).expanduser().resolve())


def resolve_tracking(explicit: str | None, experiment: Experiment) -> str:
    uri = (explicit or os.environ.get("MLFLOW_TRACKING_URI") or experiment.tracking_uri
           or DEFAULT_TRACKING_URI)
    if is_relative_sqlite(uri) and in_ray_job_copy():
        raise ExperimentError(
            "the MLflow store would be a relative SQLite file inside the job's temporary copy of "
            "the working directory: pass --tracking-uri (an http:// server, or sqlite:////abs/path)")
    return resolve_tracking_uri(uri)


def run_experiment(experiment: Experiment, trials: list[TrialSpec], *,
                   tracking_uri: str | None = None, storage_path: str | None = None,
                   address: str | None = None) -> SweepOutcome:
    storage = resolve_storage_path(storage_path or experiment.storage_path)
    uri = resolve_tracking(tracking_uri, experiment)
    data = replace(experiment.data, cache_dir=str(Path(experiment.data.cache_dir).expanduser().resolve()))
    experiment = replace(experiment, data=data)
    print(f"[quokka] preparing data shards in {data.cache_dir}", flush=True)
    prepare_shards(data)

    store = MlflowStore(uri)
    parent = store.start_parent_run(experiment.name, {
        "experiment": experiment.name, "trials": len(trials), "study": type(experiment.study).__name__,
        "search": experiment.search.algorithm, "storage_path": storage})
    print(f"[quokka] MLflow: experiment {experiment.name!r}, parent run {parent} in {uri}", flush=True)
    context = SweepContext(experiment=experiment, trials={t.name: t for t in trials},
                           tracking_uri=uri, storage_path=storage, parent_run_id=parent,
                           git_commit=git_commit())
    address = address or os.environ.get("RAY_ADDRESS")
    # "local" starts a private cluster even when another one runs on this machine.
    if not ray.is_initialized():
        ray.init(address=address or "local")
    status = "FAILED"
    try:
        results = run_sweep(experiment, trials, context)
        finished, failed = summarize(results)
        status = "FINISHED" if failed == 0 else "FAILED"
    finally:
        store.end_run(parent, status)
    return SweepOutcome(experiment.name, uri, storage, parent, finished, failed)
