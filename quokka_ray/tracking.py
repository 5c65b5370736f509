"""The one place that talks to MLflow: where runs go, parent and trial runs, the trainer's
metrics, and reading finished trials back for the law fits.

Layout in MLflow: one experiment per quokka experiment; one parent run per `quokka run`
(tag quokka.role=sweep); one child run per trial (tags quokka.role=trial, quokka.trial=<name>,
mlflow.parentRunId). A trial interrupted and resumed continues in its unfinished run; one
whose run has ended (finished, stopped early, diverged) is not run again."""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from quokka_ray import __version__
from quokka_ray.reachability import unreachable_reason

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRIAL_TAG = "quokka.trial"
ROLE_TAG = "quokka.role"
PARENT_TAG = "mlflow.parentRunId"
PLAN_DIGEST_TAG = "quokka.plan_digest"
OUTCOME_TAG = "quokka.outcome"
"""How a trial ended: finished, stopped_early (by ASHA), diverged or failed."""
ENDED_OUTCOMES = ("finished", "stopped_early", "diverged")
"""Outcomes that are final: a trial that raised (failed) is tried again when its sweep resumes."""
PLAN_ARTIFACT = "plan.json"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
"""The MLflow UI opens an experiment without this kind in its GenAI view (traces), where a
sweep's runs do not show."""
NOTE_TAG = "mlflow.note.content"
"""A run's description in the MLflow UI (Markdown)."""
NOTE_COLUMNS = {"non_embedding_params": "N", "tokens": "D", "flops": "C",
                "objective": "objective", "final_loss": "final loss", "val_loss": "val loss",
                "outcome": "outcome"}


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


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Raise ConnectionError (one line) if an http(s) tracking server does not answer: MLflow's
    own client would retry for minutes, after Ray had started."""
    scheme = urlparse(tracking_uri).scheme
    if scheme not in ("http", "https"):
        return
    reason = unreachable_reason(tracking_uri, 443 if scheme == "https" else 80, timeout_s)
    if reason:
        raise ConnectionError(f"MLflow tracking server {tracking_uri} is unreachable ({reason}): "
                              "start it, or pass another --tracking-uri")


def store_exists(tracking_uri: str) -> bool:
    """False for a SQLite store whose file is not there yet (reading it would create it)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).exists()
    return True


class MlflowStore:
    """Experiment, sweep, trial and fit runs in one tracking store."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        if not create:
            return None
        return self.client.create_experiment(name, artifact_location=self._artifact_location(name),
                                             tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})

    def _artifact_location(self, name: str) -> str | None:
        """Beside a SQLite store, as an absolute folder: MLflow's default is relative to the
        working directory, which under `ray job submit` is a copy deleted with the job."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None  # a server decides where artifacts go
        database = Path(self.tracking_uri[len("sqlite:///"):])
        return (database.parent / "mlartifacts" / name).as_uri()

    def _runs(self, experiment_name: str, filter_string: str, max_results: int = 50_000):
        experiment_id = self.experiment_id(experiment_name, create=False)
        if experiment_id is None:
            return []
        return self.client.search_runs([experiment_id], filter_string=filter_string,
                                       order_by=["attributes.start_time DESC"],
                                       max_results=max_results)

    def sweep_plan(self, experiment_name: str) -> dict | None:
        """The plan recorded by the experiment's latest sweep run, or None."""
        runs = self._runs(experiment_name, f"tags.`{ROLE_TAG}` = 'sweep'", max_results=1)
        if not runs or PLAN_DIGEST_TAG not in runs[0].data.tags:
            return None
        with tempfile.TemporaryDirectory() as folder:
            path = self.client.download_artifacts(runs[0].info.run_id, PLAN_ARTIFACT, folder)
            return json.loads(Path(path).read_text())

    def sweep_run(self, experiment_name: str, plan: dict, params: dict[str, object]) -> str:
        """The sweep's run: the one that recorded this plan (a resumed sweep), else a new one."""
        runs = self._runs(experiment_name,
                          f"tags.`{ROLE_TAG}` = 'sweep' and tags.`{PLAN_DIGEST_TAG}` = "
                          f"'{plan['digest']}'", max_results=1)
        if runs:
            run_id = runs[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id(experiment_name), run_name=f"{experiment_name}-sweep",
            tags={ROLE_TAG: "sweep", PLAN_DIGEST_TAG: plan["digest"],
                  "quokka.version": __version__})
        self.client.log_batch(run.info.run_id, params=_params(params))
        self.client.log_dict(run.info.run_id, plan, PLAN_ARTIFACT)
        return run.info.run_id

    def describe_sweep(self, run_id: str, experiment_name: str) -> None:
        """The sweep run's description in the MLflow UI: a table of its trials, and where its
        laws and plots go."""
        self.client.set_tag(run_id, NOTE_TAG, sweep_note(self.trial_runs(experiment_name),
                                                         experiment_name))

    def trial_run(self, experiment_name: str, parent_run_id: str, trial_name: str,
                  params: dict[str, object], role: str = "trial") -> str:
        """The trial's unfinished run if it has one (a resume), else a new child run. `role`:
        'trial' (a point of the laws) or 'stable' (a ladder's shared stable phase)."""
        unfinished = self._runs(
            experiment_name,
            f"tags.`{TRIAL_TAG}` = '{trial_name}' and attributes.status != 'FINISHED'",
            max_results=1)
        if unfinished:
            run_id = unfinished[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id(experiment_name), run_name=trial_name,
            tags={ROLE_TAG: role, TRIAL_TAG: trial_name, PARENT_TAG: parent_run_id})
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id

    def finished_trial_run(self, experiment_name: str, trial_name: str) -> str | None:
        runs = self._runs(experiment_name, f"tags.`{TRIAL_TAG}` = '{trial_name}' and "
                          "attributes.status = 'FINISHED'", max_results=1)
        return runs[0].info.run_id if runs else None

    def ended_trial_run(self, experiment_name: str, trial_name: str):
        """The trial's run if the sweep's driver has recorded how it ended (finished, stopped
        early or diverged; the tag is set before the status), else None."""
        for run in self._runs(experiment_name, f"tags.`{TRIAL_TAG}` = '{trial_name}'"):
            if (run.info.status == "FINISHED"
                    or run.data.tags.get(OUTCOME_TAG) in ENDED_OUTCOMES):
                return run
        return None

    def recorded_result(self, run) -> dict[str, float]:
        """The last result an ended trial reported, rebuilt from its run: its latest metrics,
        at the step of its last evaluation (or of its divergence)."""
        result = dict(run.data.metrics)
        key = "diverged" if result.get("diverged") else "val_loss"
        steps = [m.step for m in self.client.get_metric_history(run.info.run_id, key)]
        result["step"] = float(max(steps, default=int(run.data.params.get("steps", 0))))
        if result.get("diverged"):
            result.update(train_loss=math.inf, val_loss=math.inf, final_loss=math.inf)
        return result

    def find_trial_run(self, experiment_name: str, trial_name: str) -> str | None:
        runs = self._runs(experiment_name, f"tags.`{TRIAL_TAG}` = '{trial_name}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def end_run(self, run_id: str, status: str = "FINISHED", outcome: str | None = None) -> None:
        """Tag the outcome, then end the run; a run that already ended so keeps its end time (a
        resumed sweep is told again how the trials it did not train had ended)."""
        run = self.client.get_run(run_id)
        if outcome is not None and run.data.tags.get(OUTCOME_TAG) != outcome:
            self.client.set_tag(run_id, OUTCOME_TAG, outcome)
        if run.info.status != status or run.info.end_time is None:
            self.client.set_terminated(run_id, status=status)

    def log_artifacts(self, run_id: str, paths: list[Path], artifact_path: str | None = None):
        for path in paths:
            self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def latest_sweep_run(self, experiment_name: str) -> str | None:
        runs = self._runs(experiment_name, f"tags.`{ROLE_TAG}` = 'sweep'", max_results=1)
        return runs[0].info.run_id if runs else None

    def fit_run(self, experiment_name: str, sweep_run_id: str | None,
                params: dict[str, object]) -> str:
        """A new run for one `quokka fit`: it holds the report and plots, nested under the
        sweep whose trials it fitted."""
        tags = {ROLE_TAG: "fit", "quokka.version": __version__}
        if sweep_run_id:
            tags[PARENT_TAG] = sweep_run_id
        run = self.client.create_run(self.experiment_id(experiment_name),
                                     run_name=f"{experiment_name}-fit", tags=tags)
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id

    def trial_runs(self, experiment_name: str) -> pd.DataFrame:
        """One row per trial: its latest run (FINISHED runs first), with status, outcome,
        params and final metrics."""
        runs = self._runs(experiment_name, f"tags.`{ROLE_TAG}` = 'trial'")
        # Latest first, but a FINISHED run of a trial outranks a newer unfinished one.
        runs = sorted(runs, key=lambda r: r.info.status != "FINISHED")
        rows, seen = [], set()
        for run in runs:
            name = run.data.tags[TRIAL_TAG]
            if name in seen:
                continue  # an older run of the same trial
            seen.add(name)
            rows.append({"trial_name": name, "run_id": run.info.run_id,
                         "status": run.info.status,
                         "outcome": run.data.tags.get(OUTCOME_TAG, run.info.status.lower()),
                         **run.data.params, **run.data.metrics})
        return pd.DataFrame(rows)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]


class MlflowRunTracker:
    """The trainer's Tracker (rank 0): buffers metrics and writes them in batches, since one
    request per metric per step would slow small models down.

    A worker restarted from a checkpoint trains again the steps since that checkpoint: the run
    keeps the values it already holds for them (the same ones: the trajectory is seeded), so
    it holds exactly one value per metric and step."""

    def __init__(self, tracking_uri: str, run_id: str, flush_every: int = 200):
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.flush_every = flush_every
        self._buffer: list[Metric] = []
        self._logged_through = {
            key: max(m.step for m in self.client.get_metric_history(run_id, key))
            for key in self.client.get_run(run_id).data.metrics}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in metrics.items()
                            if step > self._logged_through.get(k, -1))
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self.client.log_batch(self.run_id, metrics=batch)


def sweep_note(trials: pd.DataFrame, experiment_name: str) -> str:
    """Markdown: one row per trial with N, D, C, objective, final and validation loss."""
    lines = [f"Sweep `{experiment_name}`: {len(trials)} trials. `quokka fit` fits its laws; "
             "the plots and the report are logged to a fit run nested under this run.", "",
             "| trial | " + " | ".join(NOTE_COLUMNS.values()) + " |",
             "|---" * (len(NOTE_COLUMNS) + 1) + "|"]
    for row in trials.sort_values("trial_name").to_dict("records") if len(trials) else []:
        row["objective"] = "-".join(str(row.get(k, "")) for k in ("kind", "kernel", "schedule",
                                                                  "loss", "timesteps")
                                    if row.get("kind") == "dlm" or k == "kind")
        cells = [_cell(row.get(key)) for key in NOTE_COLUMNS]
        lines.append(f"| {row['trial_name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.4g}"


def _params(params: dict[str, object]):
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in params.items()]


__all__ = ["MlflowRunTracker", "MlflowStore", "check_reachable", "git_commit",
           "resolve_tracking_uri"]
