"""`ray job submit --working-dir .` against a cluster of the test's own: the job runs a small
experiment and its runs land in the MLflow store the test named."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import EXPERIMENTS

BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory):
    """`ray start --head --block` in a process group of its own; stopping the group stops
    exactly the processes this cluster started (never `ray stop`, which stops every cluster)."""
    tmp_path = tmp_path_factory.mktemp("own-cluster")
    gcs, dashboard, client, agent, metrics, node_mgr, obj_mgr = free_ports(7)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    log = open(tmp_path / "ray-head.log", "w")  # noqa: SIM115 - open for the cluster's lifetime
    # Ray's socket paths must stay short (a Unix socket path holds at most 107 bytes).
    ray_temp = tempfile.mkdtemp(prefix="qr-", dir="/tmp")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={gcs}", f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         f"--metrics-export-port={metrics}", f"--node-manager-port={node_mgr}",
         f"--object-manager-port={obj_mgr}", "--num-cpus=2", "--include-dashboard=true",
         f"--temp-dir={ray_temp}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            ready = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address],
                                   env=env, capture_output=True, text=True, timeout=60)
            if ready.returncode == 0:
                break
            assert head.poll() is None, (tmp_path / "ray-head.log").read_text()[-3000:]
            time.sleep(2)
        else:
            pytest.fail("the test cluster's job server did not come up in 120 s")
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(ray_temp, ignore_errors=True)


@pytest.mark.cluster
def test_job_submit_runs_an_experiment(own_cluster, tmp_path, data_cache):
    address, env = own_cluster
    workdir = tmp_path / "project"
    (workdir / "experiments").mkdir(parents=True)
    shutil.copy(EXPERIMENTS / "tiny_job.py", workdir / "experiments" / "tiny_job.py")
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    done = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(workdir),
         "--runtime-env-json", f'{{"env_vars": {{"QUOKKA_TEST_CACHE": "{data_cache}"}}}}', "--",
         sys.executable, "-m", "quokka_ray.cli", "run", "experiments/tiny_job.py",
         "--tracking-uri", uri, "--storage-path", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "succeeded" in done.stdout + done.stderr

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_job")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`quokka.role` = 'trial'")
    assert runs and all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.cluster
def test_relative_paths_in_a_job_are_refused(own_cluster, tmp_path, data_cache):
    address, env = own_cluster
    workdir = tmp_path / "project"
    workdir.mkdir()
    shutil.copy(EXPERIMENTS / "tiny_job.py", workdir / "tiny_rel.py")
    done = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(workdir),
         "--", sys.executable, "-m", "quokka_ray.cli", "run", "tiny_rel.py",
         "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    assert "storage path 'quokka_runs' is relative" in done.stdout + done.stderr
