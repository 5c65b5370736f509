"""A tracking server with users and passwords (MLflow's basic-auth app): `quokka run` takes its
credentials from MLflow's own environment variables, stops before Ray starts when the server
refuses them, and writes no credential, and no value of a secret-looking environment
variable, into a parameter, tag or artifact of its runs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.tracking import (
    REDACTED,
    MlflowStore,
    redact,
    resolve_tracking_uri,
    secret_values,
    without_userinfo,
)
from tests.conftest import EXPERIMENTS, run_cli_cases
from tests.mlflow_server import MlflowServer

ADMIN = ("quokka-admin", "admin-password-of-the-test")
RUNNER = ("quokka-runner", "runner-password-of-the-test")
#: Secret-looking variables in the environment of `quokka run`: none may reach MLflow.
SECRETS = {"QUOKKA_TEST_API_KEY": "sk-test-5f0c1d9e8b7a", "HF_TOKEN": "hf_test_token_0a1b2c3d",
           "AWS_SECRET_ACCESS_KEY": "aws/secret+access/key0123"}
SECRET_PARTS = ("TOKEN", "SECRET", "PASSWORD", "KEY")


def secret_values_of(env: dict[str, str]) -> set[str]:
    """What the scan looks for: the user's name and password, the admin's password, and every value of 8 characters or more of a
    variable whose name contains TOKEN, SECRET, PASSWORD or KEY (a shorter one, such as 1 or
    true, would be found in any record)."""
    return {*RUNNER, ADMIN[1]} | {value for name, value in env.items()
                                    if any(p in name.upper() for p in SECRET_PARTS)
                                    and len(value) >= 8}


def leaks(client: MlflowClient, secrets: set[str]) -> list[str]:
    """Every place in every run of every experiment where a secret appears: params, tags,
    and the bytes of every artifact."""
    found = []

    def scan(where: str, text: str) -> None:
        found.extend(f"{where}: {secret[:4]}..." for secret in secrets if secret in text)

    for experiment in client.search_experiments():
        scan(f"experiment {experiment.name} tags", json.dumps(experiment.tags))
        for run in client.search_runs([experiment.experiment_id]):
            name = f"run {run.info.run_name}"
            for key, value in run.data.params.items():
                scan(f"{name} param {key}", f"{key}={value}")
            for key, value in run.data.tags.items():
                scan(f"{name} tag {key}", f"{key}={value}")
            with tempfile.TemporaryDirectory() as folder:
                local = Path(client.download_artifacts(run.info.run_id, "", folder))
                for path in local.rglob("*"):
                    if path.is_file():
                        scan(f"{name} artifact {path.relative_to(local)}",
                             path.read_bytes().decode("utf-8", "replace"))
    return found


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-auth"), admin=ADMIN)
    server.start()
    try:
        # An ordinary user (not an admin), as a shared server's users are.
        import urllib.request

        request = urllib.request.Request(
            f"{server.uri}/api/2.0/mlflow/users/create", method="POST",
            data=json.dumps({"username": RUNNER[0], "password": RUNNER[1]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Basic " +
                     base64.b64encode(":".join(ADMIN).encode()).decode()})
        urllib.request.urlopen(request, timeout=60).close()
        yield server
    finally:
        server.stop()


def quokka_env(data_cache, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return {**env, "QUOKKA_TEST_CACHE": str(data_cache), **extra}


@pytest.mark.slow
def test_refused_credentials_stop_run_and_fit_before_ray_with_one_line(auth_server, tmp_path,
                                                                       data_cache, monkeypatch):
    experiment = EXPERIMENTS / "tiny_job.py"
    runs = tmp_path / "runs"
    cases = [(["run", str(experiment), "--tracking-uri", auth_server.uri,
               "--storage-path", str(runs)], tmp_path),
             (["fit", str(experiment), "--tracking-uri", auth_server.uri], tmp_path)]
    for env in ({"MLFLOW_TRACKING_USERNAME": RUNNER[0],
                 "MLFLOW_TRACKING_PASSWORD": "not-the-password-of-the-test"},
                {}):  # no credentials at all
        # run_cli_cases adds `env` to this process's environment, which has no credentials.
        for result in run_cli_cases(cases, tmp_path, env={"QUOKKA_TEST_CACHE": str(data_cache),
                                                          **env}):
            lines = [line for line in result["stderr"].splitlines() if line.strip()]
            assert result["code"] == 2 and len(lines) == 1, result["stderr"]
            line = lines[0]
            assert line.startswith("quokka: error: ")
            assert f"{auth_server.uri} refused the credentials (HTTP 401)" in line, line
            assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in line, line
            assert ("it sent" in line) == bool(env), line
            assert "not-the-password" not in line
            assert not result["ray"], "Ray started"
            assert result["created"] == [], result["created"]
    assert not runs.exists()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    names = [e.name for e in MlflowClient(auth_server.uri).search_experiments()]
    assert "tiny_job" not in names, "an MLflow experiment was created"


@pytest.mark.cluster
def test_a_user_s_credentials_record_the_runs_and_no_secret(auth_server, tmp_path, data_cache,
                                                            monkeypatch):
    """`quokka run` in a process of its own, as a user runs it: its local Ray cluster starts
    from that environment, so the Train worker that logs the metrics has the credentials."""
    env = quokka_env(data_cache, MLFLOW_TRACKING_USERNAME=RUNNER[0],
                     MLFLOW_TRACKING_PASSWORD=RUNNER[1], **SECRETS)
    done = subprocess.run(
        [sys.executable, "-m", "quokka_ray.cli", "run", str(EXPERIMENTS / "tiny_job.py"),
         "--tracking-uri", auth_server.uri, "--storage-path", str(tmp_path / "runs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for secret in secret_values_of(env):
        assert secret not in done.stdout + done.stderr, "a secret in the driver's log"

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", RUNNER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", RUNNER[1])
    client = MlflowClient(auth_server.uri)
    experiment = client.get_experiment_by_name("tiny_job")
    runs = {run.data.tags["quokka.role"]: run
            for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"sweep", "trial"}
    assert runs["sweep"].info.status == runs["trial"].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs["trial"].info.run_id, "train_loss")]
    assert steps == list(range(1, 11)), "the Train worker logged every step"

    assert leaks(client, secret_values_of(env)) == []


def test_records_lose_uri_credentials_and_secret_values(tmp_path, monkeypatch):
    """What quokka-ray writes to MLflow passes `redact`: URI credentials and the values of
    secret-looking variables go; short values (flags) and everything else stay."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-short")
    monkeypatch.setenv("S3_SECRET_KEY", "the-bucket-secret")
    monkeypatch.setenv("SOME_TOKEN_FLAG", "1")
    assert without_userinfo("s3://AKIA123:the-bucket-secret@bucket/runs") == "s3://bucket/runs"
    assert without_userinfo("see https://user:tok@host/a@b and hf://org/name@rev") == \
        "see https://host/a@b and hf://org/name@rev"
    assert {"pw-short", "the-bucket-secret"} <= set(secret_values())
    assert "1" not in secret_values()
    assert redact({"a": ["x the-bucket-secret y", 3], "b": "seed=1"}) == \
        {"a": [f"x {REDACTED} y", 3], "b": "seed=1"}

    store = MlflowStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    plan = {"digest": "d", "trials": {"t": {"data": {"source": "https://u:pw-short@h/c.jsonl"}}}}
    run_id = store.sweep_run("secrets", plan, {
        "storage_path": "s3://AKIA123:the-bucket-secret@bucket/runs",
        "data_source": "https://host/c.jsonl?token=the-bucket-secret", "seed": 1})
    store.log_dict(run_id, {"cache": "/tmp/the-bucket-secret/x"}, "config.json")
    client = MlflowClient(store.tracking_uri)
    params = client.get_run(run_id).data.params
    assert params["storage_path"] == "s3://bucket/runs"
    assert params["data_source"] == f"https://host/c.jsonl?token={REDACTED}"
    assert params["seed"] == "1"
    assert leaks(client, {"pw-short", "the-bucket-secret", "AKIA123"}) == []


def test_a_tracking_uri_with_credentials_is_refused_without_showing_them():
    with pytest.raises(ValueError) as refused:
        resolve_tracking_uri("http://someone:hunter2-password@127.0.0.1:5000")
    assert "hunter2" not in str(refused.value)
    assert "MLFLOW_TRACKING_USERNAME" in str(refused.value)
    assert "http://127.0.0.1:5000" in str(refused.value)

