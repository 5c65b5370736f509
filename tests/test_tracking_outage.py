"""The tracking server goes away for more than a minute while a trial trains, and comes back
on the same port and store: the trial trains on meanwhile, finishes, and its MLflow run holds
exactly one value per step, in order. Run by `make test-cluster`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import EXPERIMENTS
from tests.mlflow_server import MlflowServer

EXPERIMENT = EXPERIMENTS / "tiny_outage.py"
STEPS = 400
OUTAGE_S = 65


def first_logged_steps(client: MlflowClient, run: subprocess.Popen, timeout_s: float = 480):
    """The trial's run id, once its trainer's first metrics are in the server."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert run.poll() is None, "quokka run ended before the trial logged anything"
        experiment = client.get_experiment_by_name("tiny_outage")
        if experiment is not None:
            for trial in client.search_runs([experiment.experiment_id],
                                            filter_string="tags.`quokka.role` = 'trial'"):
                if client.get_metric_history(trial.info.run_id, "train_loss"):
                    return trial.info.run_id
        time.sleep(1)
    pytest.fail(f"no training step was logged in {timeout_s:.0f} s")


@pytest.mark.cluster
def test_a_trial_trains_through_a_tracking_outage(tmp_path, data_cache, monkeypatch):
    server = MlflowServer(tmp_path)
    server.start()
    log = tmp_path / "quokka-run.log"
    # The test's own polling gives up on a request at once.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    env = {**os.environ, "QUOKKA_TEST_CACHE": str(data_cache)}
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        env.pop(name)  # quokka-ray's own settings, not the test's
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "quokka_ray.cli", "run", str(EXPERIMENT),
             "--tracking-uri", server.uri, "--storage-path", str(tmp_path / "runs")],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = MlflowClient(server.uri)
        run_id = first_logged_steps(client, run)
        went_down = time.time()
        server.stop()
        time.sleep(OUTAGE_S)
        came_back = time.time()
        server.start()
        code = run.wait(timeout=600)
        output = log.read_text()
        assert code == 0, output[-4000:]
        trial = client.get_run(run_id)
        assert trial.info.status == "FINISHED", output[-4000:]
        history = client.get_metric_history(run_id, "train_loss")
        steps = [m.step for m in history]
        assert sorted(steps) == list(range(1, STEPS + 1)), "one value per step, none lost"
        by_step = sorted(history, key=lambda m: m.step)
        times = [m.timestamp for m in by_step]
        assert times == sorted(times), "values logged in the order of their steps"
        trained_meanwhile = [m.step for m in by_step
                             if went_down * 1000 < m.timestamp < came_back * 1000]
        assert trained_meanwhile, "no step was trained while the server was down"

        # Each process that waited says once that the server went away, and once that it is
        # back (the trainer's lines reach the driver's log with its process id).
        down = re.findall(r"^(.*?)\[quokka\] MLflow tracking server \S+ is unreachable", output,
                          re.M)
        back = re.findall(r"^(.*?)\[quokka\] MLflow tracking server \S+ is back", output, re.M)
        assert down, output[-4000:]
        assert len(down) == len(set(down)) and sorted(down) == sorted(back), output[-4000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        server.stop()


@pytest.mark.cluster
def test_the_tracker_never_waits_and_delivers_once_the_server_is_back(tmp_path, capsys):
    """The trainer's tracker on its own, against a server that goes away and comes back while
    metrics are still being logged; and a driver's call made during the outage, which waits."""
    import threading

    from quokka_ray.tracking import MlflowRunTracker, MlflowStore

    server = MlflowServer(tmp_path)
    server.start()
    try:
        store = MlflowStore(server.uri)
        client = MlflowClient(server.uri)
        experiment = store.experiment_id("outage")
        run_id = client.create_run(experiment).info.run_id
        tracker = MlflowRunTracker(server.uri, run_id, flush_every=20)
        slowest, step = 0.0, 0

        def log(until_step: int) -> None:
            nonlocal slowest, step
            while step < until_step:
                step += 1
                began = time.monotonic()
                tracker.log_metrics({"train_loss": 1.0 / step, "lr": 0.1}, step=step)
                if step % 50 == 0:
                    tracker.flush()
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.01)

        log(100)
        server.stop()
        log(300)
        ended = threading.Thread(target=store.end_run, args=(run_id, "FINISHED"))
        ended.start()  # the driver's call waits for the server
        server.start()
        log(400)
        tracker.close(timeout_s=120)
        ended.join(timeout=120)
        assert not ended.is_alive()
        assert slowest < 0.5, f"a logging step waited {slowest:.2f} s"
        for key in ("train_loss", "lr"):
            history = client.get_metric_history(run_id, key)
            assert [m.step for m in sorted(history, key=lambda m: m.timestamp)] == \
                list(range(1, 401)), key
        assert client.get_run(run_id).info.status == "FINISHED"
        out = capsys.readouterr().out
        assert out.count("is unreachable") == 1 and out.count("is back after") == 1, out
    finally:
        server.stop()
