"""The one place that talks to MLflow: where runs go, parent and trial runs, the trainer's
metrics, and reading finished trials back for the law fits.

Layout in MLflow: one experiment per quokka experiment; one parent run per `quokka run`
(tag quokka.role=sweep); one child run per trial (tags quokka.role=trial, quokka.trial=<name>,
mlflow.parentRunId). A trial interrupted and resumed continues in its unfinished run; one
whose run has ended (finished, stopped early, diverged) is not run again.

Credentials: MLflow's client reads them from its own environment variables
(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN); quokka-ray
passes nothing else, refuses a tracking URI that carries them, and writes neither them nor the
value of any secret-looking environment variable into a parameter, tag or artifact.

Outages: every call of the driver and of a trial's process waits for a tracking server that
went away (saying so once, and once that it is back), up to QUOKKA_TRACKING_OUTAGE_S; the
trainer's metrics are delivered by a thread of their own, so training never waits for them."""

from __future__ import annotations

import collections
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
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
    a temporary copy of the folder, and a relative store would be lost with it. A URI with a
    user and password in it is refused: it travels into Tune's stored state and the logs."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https") and (parsed.username or parsed.password):
        raise ValueError(
            f"tracking URI {without_userinfo(uri)} carries credentials in its user part: give "
            f"the URI without them and put them in {_credential_variables_text()}, which "
            "MLflow's client reads (quokka-ray keeps the URI in its logs and stored state)")
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


def check_tracking_server(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Raise (one line) if an http(s) tracking server does not answer, or refuses the
    credentials MLflow's client would send: ConnectionError, PermissionError. MLflow's own
    client would retry for minutes, or fail in every trial, after Ray had started."""
    scheme = urlparse(tracking_uri).scheme
    if scheme not in ("http", "https"):
        return
    reason = unreachable_reason(tracking_uri, 443 if scheme == "https" else 80, timeout_s)
    if reason is None:
        status, reason = _authenticated_status(tracking_uri, timeout_s)
        if status in (401, 403):
            raise PermissionError(credentials_refused(tracking_uri, status))
    if reason:
        raise ConnectionError(f"MLflow tracking server {tracking_uri} is unreachable ({reason}): "
                              "start it, or pass another --tracking-uri")


def _authenticated_status(tracking_uri: str, timeout_s: float) -> tuple[int | None, str | None]:
    """(HTTP status, None) of one call that needs the user's rights (listing one experiment),
    sent with the credentials MLflow's client would send; (None, why) if it got no answer."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(get_default_host_creds(tracking_uri),
                                "/api/2.0/mlflow/experiments/search", "GET",
                                params={"max_results": 1}, max_retries=0, timeout=timeout_s,
                                raise_on_status=False)
    except Exception as err:  # noqa: BLE001 - MLflow wraps every transport error alike
        return None, short_reason(err)
    return response.status_code, None


def credentials_refused(tracking_uri: str, status: int) -> str:
    """The one line that says the server refused the request, and what quokka-ray sends."""
    set_names = [name for name in CREDENTIAL_VARIABLES if os.environ.get(name)]
    sent = (f"it sent {' and '.join(set_names)} from the environment" if set_names else
            "none of them is set")
    return (f"MLflow tracking server {tracking_uri} refused the credentials (HTTP {status}): "
            f"quokka-ray passes MLflow's own {_credential_variables_text()} from the environment "
            f"(or ~/.mlflow/credentials), and {sent}; set them to a user of that server")


def _credential_variables_text() -> str:
    return "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"


#: Where MLflow's client takes its credentials from (quokka-ray sets none of them).
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                        "MLFLOW_TRACKING_TOKEN")
#: An environment variable whose name contains one of these holds a secret: its value is
#: never written to MLflow.
SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
#: Values shorter than this (flags such as 1 or true) cannot be told from ordinary settings,
#: so only longer ones are searched for and replaced; MLflow's own credentials always are.
MIN_SECRET_LENGTH = 8
REDACTED = "[redacted]"
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s?#]+@")


def without_userinfo(text: str) -> str:
    """`text` with the user:password@ part of every URI in it removed (s3://KEY:SECRET@bucket,
    https://user:token@host/...)."""
    return _USERINFO.sub(r"\1", text)


#: Where `mlflow ui` serves by default.
MLFLOW_UI = "http://127.0.0.1:5000"


def runs_page(tracking_uri: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment: on the tracking server itself, else where
    `mlflow ui` serves. MLflow 3 opens an experiment in its GenAI view unless the address
    asks for the model-training one (its sidebar switches between them)."""
    base = without_userinfo(tracking_uri).rstrip("/") if tracking_uri.startswith(
        ("http://", "https://")) else MLFLOW_UI
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values never to write: MLflow's credentials (the environment's, or the credentials
    file's password) and every value of at least MIN_SECRET_LENGTH characters of an
    environment variable whose name contains TOKEN, SECRET, PASSWORD or KEY; longest first."""
    environ = os.environ if environ is None else environ
    values = {value for name, value in environ.items()
              if any(part in name.upper() for part in SECRET_NAME_PARTS)
              and len(value) >= MIN_SECRET_LENGTH}
    values.update(environ[name] for name in CREDENTIAL_VARIABLES[1:] if environ.get(name))
    if environ is os.environ:
        from mlflow.utils.credentials import read_mlflow_creds

        password = read_mlflow_creds().password
        if password:
            values.add(password)
    return sorted(values, key=len, reverse=True)


def redact(value: object, secrets: list[str] | None = None) -> object:
    """A string with URI credentials and secret values taken out (anything else as is); dicts
    and lists redacted item by item. Everything quokka-ray writes to MLflow passes here."""
    if isinstance(value, dict):
        secrets = secret_values() if secrets is None else secrets
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        secrets = secret_values() if secrets is None else secrets
        return [redact(v, secrets) for v in value]
    if not isinstance(value, str):
        return value
    text = without_userinfo(value)
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return text


#: How long a call waits for a tracking server that went away before it gives up.
DEFAULT_OUTAGE_LIMIT_S = 900.0


def outage_limit_s() -> float:
    return float(os.environ.get("QUOKKA_TRACKING_OUTAGE_S", DEFAULT_OUTAGE_LIMIT_S))


def fail_fast_http() -> None:
    """MLflow's client retries a request that got no answer 7 times with growing pauses (about
    4 minutes in silence, a warning line per retry) and waits up to 120 s for each answer.
    quokka-ray's calls retry by themselves and say so once, so each of MLflow's attempts should
    give up at once (and wait at most 30 s for an answer, artifact uploads included); the
    user's own settings of these variables are kept."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def is_unreachable(err: BaseException) -> bool:
    """Whether a failed MLflow call got no answer (connection refused or reset, timeout, or only
    502/503/504 from a proxy before the server): worth waiting for, unlike a refusal."""
    import requests

    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                              requests.exceptions.RetryError, ConnectionError, TimeoutError)):
            return True
        # MLflow raises its own exception from inside the handler of the transport's error.
        cause = cause.__cause__ or cause.__context__
    return False


class OutageNotice:
    """Says once that a tracking server is unreachable and once that it is back, per process
    (the driver, a trial's process, a trainer), however many calls wait meanwhile."""

    def __init__(self):
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}

    def failed(self, uri: str, err: BaseException, what: str) -> None:
        with self._lock:
            if uri in self._down:
                return
            self._down[uri] = time.monotonic()
        say(f"[quokka] MLflow tracking server {uri} is unreachable ({short_reason(err)}): "
            f"{what}; retrying for up to {outage_limit_s() / 60:.0f} min")

    def recovered(self, uri: str) -> None:
        with self._lock:
            began = self._down.pop(uri, None)
        if began is not None:
            say(f"[quokka] MLflow tracking server {uri} is back after "
                f"{time.monotonic() - began:.0f} s")


def say(line: str) -> None:
    """One line to standard output. Not print(): Ray Train patches print in its workers to
    log each line as well, which shows it twice in the driver's log."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def short_reason(err: BaseException) -> str:
    """Why a call got no answer, in a few words ("Connection refused", "Remote end closed
    connection without response"), from the urllib3 message that MLflow's error carries."""
    text = str(err)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    if "timed out" in text or "timeout" in text.lower():
        return "no answer in time"
    caused = text.partition("Caused by ")[2] or text.partition("failed with exception ")[2]
    quoted = re.findall(r"'([^']{4,})'", caused)
    if quoted:  # the innermost error's own words
        return quoted[-1].strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:120]


OUTAGES = OutageNotice()
T = TypeVar("T")


def patiently(call: Callable[[], T], uri: str, what: str = "waiting for it",
              limit_s: float | None = None) -> T:
    """`call()`, called again while the tracking server is unreachable, with pauses growing to
    15 s, for up to `limit_s` (QUOKKA_TRACKING_OUTAGE_S, default 15 minutes) from the first
    failure; then its error is raised. Any other error is raised at once.
    Only database-backed servers make a retried metric batch harmless: they keep one row per
    (key, step, timestamp, value), so a batch stored before its answer was lost is not doubled."""
    limit_s = outage_limit_s() if limit_s is None else limit_s
    deadline, pause = None, 1.0
    while True:
        try:
            result = call()
        except Exception as err:
            if not is_unreachable(err):
                raise
            now = time.monotonic()
            deadline = deadline or now + limit_s
            if now >= deadline:
                raise
            OUTAGES.failed(uri, err, what)
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, 15.0)
            continue
        if deadline is not None:
            OUTAGES.recovered(uri)
        return result


class PatientClient:
    """An MlflowClient whose calls wait for a tracking server that went away (`patiently`).
    A call whose answer was lost is made again: harmless for the calls that set a value, but a
    run created just before the server went away may be created twice (the first one then
    stays empty and unfinished)."""

    def __init__(self, tracking_uri: str):
        self._client = MlflowClient(tracking_uri)
        self._uri = tracking_uri

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            return patiently(lambda: method(*args, **kwargs), self._uri)

        return call


def store_exists(tracking_uri: str) -> bool:
    """False for a SQLite store whose file is not there yet (reading it would create it)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).exists()
    return True


class MlflowStore:
    """Experiment, sweep, trial and fit runs in one tracking store."""

    def __init__(self, tracking_uri: str):
        fail_fast_http()
        self.tracking_uri = tracking_uri
        self.client = PatientClient(tracking_uri)

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
        self.log_dict(run.info.run_id, plan, PLAN_ARTIFACT)
        return run.info.run_id

    def log_dict(self, run_id: str, record: dict, name: str) -> None:
        """A JSON artifact, with URI credentials and secret values taken out."""
        self.client.log_dict(run_id, redact(record), name)

    def describe_sweep(self, run_id: str, experiment_name: str,
                       fit: FitNote | None = None) -> None:
        """The sweep run's description in the MLflow UI: a table of its trials, and where its
        laws and plots go (are, once `fit` is given)."""
        self.client.set_tag(run_id, NOTE_TAG, redact(sweep_note(self.trial_runs(experiment_name),
                                                                experiment_name, fit)))

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
                                     run_name=fit_run_name(experiment_name), tags=tags)
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
    """The trainer's Tracker (rank 0). The training thread only appends metrics to a buffer;
    `flush` hands the buffer to a thread of this tracker that writes it to MLflow in batches
    (one request per metric per step would slow small models down) and, while the server is
    unreachable, keeps it and tries again, so that a training step never waits for the server.
    Batches go out in the order they were logged, so the run holds each metric's steps in
    order. `close` waits until everything is delivered.

    A worker restarted from a checkpoint trains again the steps since that checkpoint: the run
    keeps the values it already holds for them (the same ones: the trajectory is seeded), so
    it holds exactly one value per metric and step.

    Memory is bounded: past `max_pending` metrics waiting for delivery (an outage of hours),
    logging waits for the server. Past QUOKKA_TRACKING_OUTAGE_S without an answer the
    tracker gives up, and the trial fails at its next log, flush or close."""

    #: Metrics per request: the tracking server's own limit on a batch.
    BATCH = 1000

    def __init__(self, tracking_uri: str, run_id: str, flush_every: int = 200,
                 max_pending: int = 200_000):
        fail_fast_http()
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.flush_every = flush_every
        self.max_pending = max_pending
        self._buffer: list[Metric] = []  # the training thread's, not handed over yet
        self._queue: collections.deque[Metric] = collections.deque()  # handed over, in order
        self._ready = threading.Condition()
        self._closing = threading.Event()
        self._error: BaseException | None = None
        self._logged_through: dict[str, int] | None = None  # read from the run on first contact
        self._waited = False
        self._sender = threading.Thread(target=self._deliver, name="quokka-mlflow-metrics",
                                        daemon=True)
        self._sender.start()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def log_artifact(self, path: Path) -> None:
        patiently(lambda: self.client.log_artifact(self.run_id, str(path)), self.tracking_uri)

    def flush(self) -> None:
        """Hand what was logged to the sending thread; waits only when `max_pending` metrics
        are already waiting (an outage of hours)."""
        batch, self._buffer = self._buffer, []
        with self._ready:
            self._raise_error()
            while len(self._queue) >= self.max_pending and self._error is None:
                if not self._waited:
                    self._waited = True
                    say(f"[quokka] {len(self._queue)} metrics wait for MLflow tracking server "
                        f"{self.tracking_uri}: training waits for it too")
                self._ready.wait(1.0)
            self._raise_error()
            self._queue.extend(batch)
            self._ready.notify_all()

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver everything logged, waiting up to `timeout_s` (QUOKKA_TRACKING_OUTAGE_S by
        default) for the server; raise if something could not be delivered."""
        self.flush()
        timeout_s = outage_limit_s() if timeout_s is None else timeout_s
        self._closing.set()
        with self._ready:
            self._ready.notify_all()
        self._sender.join(timeout_s)
        with self._ready:
            self._raise_error()
            if self._queue:
                raise TimeoutError(f"{len(self._queue)} metrics of MLflow run {self.run_id} "
                                   f"were not delivered to {self.tracking_uri} in "
                                   f"{timeout_s:.0f} s")

    def end(self, outcome: str) -> None:
        """Deliver everything logged, then end the run: FINISHED for 'finished', FAILED
        otherwise, with the outcome tagged."""
        self.close()
        MlflowStore(self.tracking_uri).end_run(
            self.run_id, "FINISHED" if outcome == "finished" else "FAILED", outcome=outcome)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"MLflow run {self.run_id}: its metrics could not be delivered "
                               f"to {self.tracking_uri}: {self._error}") from self._error

    def _deliver(self) -> None:
        """The sending thread: the oldest batch of metrics, until closed and all delivered."""
        while True:
            with self._ready:
                while not self._queue and not self._closing.is_set():
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [self._queue[i] for i in range(min(self.BATCH, len(self._queue)))]
            try:
                patiently(lambda batch=batch: self._send(batch), self.tracking_uri,
                          "the run's metrics wait in memory and training goes on")
            except Exception as err:  # noqa: BLE001 - handed to the training thread
                with self._ready:
                    self._error = err
                    self._ready.notify_all()
                return
            with self._ready:
                for _ in batch:
                    self._queue.popleft()
                self._ready.notify_all()

    def _send(self, batch: list[Metric]) -> None:
        if self._logged_through is None:
            self._logged_through = {
                key: max(m.step for m in self.client.get_metric_history(self.run_id, key))
                for key in self.client.get_run(self.run_id).data.metrics}
        through = dict(self._logged_through)
        fresh = []
        for metric in batch:  # steps the run holds already (trained again after a restart)
            if metric.step > through.get(metric.key, -1):
                fresh.append(metric)
                through[metric.key] = metric.step
        if fresh:
            self.client.log_batch(self.run_id, metrics=fresh)
        self._logged_through = through


def fit_run_name(experiment_name: str) -> str:
    return f"{experiment_name}-fit"


@dataclass(frozen=True)
class FitNote:
    """Where the latest `quokka fit` of a sweep put its report and plots."""

    run_id: str
    run_name: str
    files: tuple[str, ...]  # artifact names: report.md, trials.csv, the plots
    out_dir: str  # the folder `quokka fit` wrote them to, on the machine it ran on


def sweep_note(trials: pd.DataFrame, experiment_name: str, fit: FitNote | None = None) -> str:
    """Markdown: one row per trial with N, D, C, objective, final and validation loss, and
    where the laws' report and plots are (or go)."""
    if fit is None:
        where = ("`quokka fit` fits its laws; the plots and the report are logged to a fit run "
                 "nested under this run.")
    else:
        plots = [f for f in fit.files if f.endswith(".png")]
        where = (f"Laws fitted by `quokka fit`: the report (`report.md`) and {len(plots)} plots "
                 f"are the artifacts of the fit run `{fit.run_name}` ({fit.run_id}), nested "
                 f"under this run, and in `{fit.out_dir}` where it ran. Plots: "
                 + ", ".join(f"`{p}`" for p in plots) + ".")
    lines = [f"Sweep `{experiment_name}`: {len(trials)} trials. {where}", "",
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
    """MLflow params, with URI credentials and secret values taken out (a storage path such as
    s3://KEY:SECRET@bucket/... or a data source URL with a token would otherwise be readable
    by everyone who reads the runs)."""
    from mlflow.entities import Param

    secrets = secret_values()
    return [Param(k, redact(str(v), secrets)[:6000]) for k, v in params.items()]


__all__ = ["MlflowRunTracker", "MlflowStore", "check_tracking_server", "git_commit", "redact",
           "resolve_tracking_uri", "without_userinfo"]
