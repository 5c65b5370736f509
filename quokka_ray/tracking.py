"""The one place that talks to MLflow: where runs go, parent and trial runs, the trainer's
metrics, and reading finished trials back for the law fits.

Layout in MLflow: one experiment per quokka experiment; one parent run per `quokka run`
(tag quokka.role=sweep); one child run per trial (tags quokka.role=trial, quokka.trial=<name>,
mlflow.parentRunId). A trial interrupted and resumed continues in its unfinished run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from quokka_ray import __version__

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRIAL_TAG = "quokka.trial"
ROLE_TAG = "quokka.role"
PARENT_TAG = "mlflow.parentRunId"


def is_relative_sqlite(uri: str) -> bool:
    """True for sqlite:///path with a relative path: a file under the working directory."""
    return uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")


def resolve_tracking_uri(explicit: str | None = None, base_dir: Path | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else MLflow's default SQLite file in the working
    directory. A relative SQLite path becomes absolute: under `ray job submit` the job runs in
    a temporary copy of the folder, and a relative store would be lost with it."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if is_relative_sqlite(uri):
        relative = uri[len("sqlite:///"):]
        uri = "sqlite:///" + str(((base_dir or Path.cwd()) / relative).resolve())
    elif "://" not in uri:
        raise ValueError(f"tracking URI {uri!r}: expected sqlite:///..., http(s)://... or "
                         "databricks (MLflow's file store is not supported)")
    return uri


def git_commit(folder: Path | None = None) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder or Path.cwd(),
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class MlflowStore:
    """Experiment, parent and trial runs in one tracking store."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(name) if create else None

    def start_parent_run(self, experiment_name: str, params: dict[str, object]) -> str:
        run = self.client.create_run(
            self.experiment_id(experiment_name), run_name=f"{experiment_name}-sweep",
            tags={ROLE_TAG: "sweep", "quokka.version": __version__})
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id

    def trial_run(self, experiment_name: str, parent_run_id: str, trial_name: str,
                  params: dict[str, object]) -> str:
        """The trial's unfinished run if it has one (a resume), else a new child run."""
        experiment_id = self.experiment_id(experiment_name)
        unfinished = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TRIAL_TAG}` = '{trial_name}' and attributes.status != 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1)
        if unfinished:
            run_id = unfinished[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            experiment_id, run_name=trial_name,
            tags={ROLE_TAG: "trial", TRIAL_TAG: trial_name, PARENT_TAG: parent_run_id})
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def log_artifacts(self, run_id: str, paths: list[Path], artifact_path: str | None = None):
        for path in paths:
            self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def latest_parent_run(self, experiment_name: str) -> str | None:
        experiment_id = self.experiment_id(experiment_name, create=False)
        if experiment_id is None:
            return None
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'sweep'",
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def finished_trials(self, experiment_name: str) -> pd.DataFrame:
        """One row per trial: its latest FINISHED run, with params and final metrics."""
        experiment_id = self.experiment_id(experiment_name, create=False)
        if experiment_id is None:
            return pd.DataFrame()
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'trial' and attributes.status = 'FINISHED'",
            order_by=["attributes.end_time DESC"], max_results=50_000)
        rows, seen = [], set()
        for run in runs:
            name = run.data.tags[TRIAL_TAG]
            if name in seen:
                continue  # an older run of the same trial
            seen.add(name)
            rows.append({"trial_name": name, "run_id": run.info.run_id,
                         **run.data.params, **run.data.metrics})
        return pd.DataFrame(rows)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]


class MlflowRunTracker:
    """The trainer's Tracker (rank 0): buffers metrics and writes them in batches, since one
    request per metric per step would slow small models down."""

    def __init__(self, tracking_uri: str, run_id: str, flush_every: int = 200):
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.flush_every = flush_every
        self._buffer: list[Metric] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self.client.log_batch(self.run_id, metrics=batch)


def _params(params: dict[str, object]):
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in params.items()]


__all__ = ["MlflowRunTracker", "MlflowStore", "git_commit", "resolve_tracking_uri"]
