"""Autoscaling on one machine, with Ray's own fake multi-node provider: a head that hosts no
trial worker and a worker node type that starts at zero nodes, shaped like the GPU pool of
cluster/aws-gpu.yaml (min_workers 0, max_workers 4, a trial fills a node) but with one CPU
standing in for the node's GPU. `quokka run` against it runs a sweep of 4 trials, each needing
a whole worker node: the autoscaler adds the nodes, every trial finishes, and the idle nodes
are removed afterwards.

The cluster is `RAY_FAKE_CLUSTER=1 ray start --head --block --autoscaling-config=...` on free
ports, in a process group of its own: the fake nodes are started by its autoscaler, so
stopping the group stops exactly this cluster's processes (`ray.cluster_utils.
AutoscalingCluster` would run `ray stop --force`, which stops every Ray on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import EXPERIMENTS, REPO
from tests.test_job_submit import free_ports

#: The worker node type: one CPU standing in for one GPU, so that a trial of one worker of
#: one CPU needs a whole node, as a trial of 8 one-GPU workers fills a gpu_8x_h100 node of
#: cluster/aws-gpu.yaml.
WORKER_TYPE = "gpu_node_1cpu_standing_in_for_1gpu"
MAX_NODES = 4
#: 15 s: the nodes go soon after the sweep, within the test's time.
IDLE_TIMEOUT_MINUTES = 0.25
#: Ray's object store at its smallest sensible size: a 2-core machine shared with other tests.
OBJECT_STORE_BYTES = 100 * 1024 * 1024
EXPERIMENT = EXPERIMENTS / "tiny_autoscale.py"
TRIALS = 4


def autoscaling_config(gcs_address: str) -> dict:
    """The cluster launcher's format, with the fake provider: the fields `ray up` would fill
    in are given, and the setup and start commands are empty (the provider starts each node
    as local processes)."""
    return {
        "cluster_name": "quokka-autoscaling-test",
        "max_workers": MAX_NODES,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address,
                     "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "head_node_type": "ray.head.default",
        "available_node_types": {
            # As in cluster/aws-gpu.yaml, the head has no CPU for trial workers.
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {"resources": {"CPU": 1, "object_store_memory": OBJECT_STORE_BYTES},
                          "node_config": {}, "min_workers": 0, "max_workers": MAX_NODES},
        },
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


class FakeAutoscalingCluster:
    def __init__(self, folder: Path):
        self.folder = folder
        gcs, dashboard, client, agent, metrics, node_mgr, obj_mgr = free_ports(7)
        self.address = f"127.0.0.1:{gcs}"
        self.ports = dict(port=gcs, dashboard_port=dashboard, ray_client_server_port=client,
                          dashboard_agent_listen_port=agent, metrics_export_port=metrics,
                          node_manager_port=node_mgr, object_manager_port=obj_mgr)
        # Ray's socket paths must stay short (a Unix socket path holds at most 107 bytes).
        self.temp_dir = tempfile.mkdtemp(prefix="qr-", dir="/tmp")
        self.env = {
            **os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            # `ray start --head` turns token authentication on when a token exists; say so,
            # so that every client of this cluster sends it.
            "RAY_AUTH_MODE": "token",
            "RAY_FAKE_CLUSTER": "1",
            # The autoscaler looks every second instead of every 5 s.
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            # Ray Train's placement-group cleaner asks the State API, which would otherwise
            # guess among every Ray cluster on this machine (one per machine on a real cluster).
            "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard}",
            # One process fewer per trial on 2 cores: nothing preempts these nodes.
            "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        config = self.folder / "autoscaling.json"
        config.write_text(json.dumps(autoscaling_config(self.address)))
        self.log = open(self.folder / "ray-head.log", "w")  # noqa: SIM115 - the cluster's lifetime
        # `python -m ray.scripts.scripts` rather than the `ray` script: every process of the
        # cluster (the autoscaler, the nodes it starts, their workers) runs this interpreter.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
             "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
             *(f"--{k.replace('_', '-')}={v}" for k, v in self.ports.items()),
             "--num-cpus=0", f"--object-store-memory={OBJECT_STORE_BYTES}",
             "--include-dashboard=true", f"--temp-dir={self.temp_dir}",
             f"--autoscaling-config={config}"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def autoscaler_log(self) -> str:
        logs = Path(self.temp_dir, "session_latest", "logs")
        return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("monitor*")))

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)  # the head drains and stops its processes
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
        # The fake nodes were started by the autoscaler, in the head's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def read_watch(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def live_workers(path: Path) -> list[str] | None:
    records = [r for r in read_watch(path) if r["workers"] is not None] if path.exists() else []
    return records[-1]["workers"] if records else None


# The limits are generous: on a 2-core machine that other jobs load, the first node has taken
# 4 minutes to come up (each node is a raylet and two agent processes, each trial three
# more processes).
@pytest.mark.cluster
@pytest.mark.timeout(1200)
def test_autoscaler_adds_nodes_for_a_sweep_and_removes_them(tmp_path, data_cache, monkeypatch):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    # The shards first, in this process: preparing them with Ray Data on the cluster would
    # itself ask the autoscaler for a node before the sweep does.
    from quokka_ray.data import prepare_shards, with_root
    from quokka_ray.sweep import load_experiment

    storage = tmp_path / "runs"
    prepare_shards(with_root(load_experiment(EXPERIMENT).data, str(storage)), workers=0)

    cluster = FakeAutoscalingCluster(tmp_path)
    watch_file = tmp_path / "nodes.jsonl"
    watcher = None
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        began = time.monotonic()
        cluster.start()
        watcher = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "scripts" / "watch_nodes.py"), cluster.address,
             str(watch_file)], env=cluster.env, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while live_workers(watch_file) is None:
            assert cluster.process.poll() is None, (tmp_path / "ray-head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the fake cluster's head did not come up in 120 s"
            time.sleep(1)
        assert live_workers(watch_file) == [], "the cluster should start with no worker node"
        up = time.monotonic()

        driver = subprocess.run(
            [sys.executable, "-m", "quokka_ray.cli", "run", str(EXPERIMENT),
             "--address", cluster.address, "--tracking-uri", uri,
             "--storage-path", str(storage)],
            env={**cluster.env, "QUOKKA_TEST_CACHE": str(data_cache)},
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
        swept = time.monotonic()
        (tmp_path / "driver.log").write_text(driver.stdout + driver.stderr)
        assert driver.returncode == 0, driver.stdout[-4000:] + driver.stderr[-4000:]
        assert f"{TRIALS} trials finished, 0 failed" in driver.stdout, driver.stdout[-3000:]

        # The nodes go once idle for IDLE_TIMEOUT_MINUTES (plus the autoscaler's rounds).
        deadline = time.monotonic() + IDLE_TIMEOUT_MINUTES * 60 + 90
        while live_workers(watch_file) != []:
            assert time.monotonic() < deadline, (
                f"worker nodes still alive {time.monotonic() - swept:.0f} s after the sweep: "
                f"{live_workers(watch_file)}")
            time.sleep(1)
        emptied = time.monotonic()
        log = cluster.autoscaler_log()
    finally:
        if watcher is not None:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait()
        cluster.stop()

    records = read_watch(watch_file)
    peak = max(len(r["workers"] or []) for r in records)
    types = {t for r in records for t in r["workers"] or []}
    print(f"\nfake cluster up in {up - began:.0f} s; sweep {swept - up:.0f} s; "
          f"peak {peak} worker nodes; all removed {emptied - swept:.0f} s after the sweep")
    # Four trials at once, each needing a whole node: the autoscaler adds a node for each.
    assert peak == MAX_NODES, f"at most {peak} worker nodes were alive at once"
    assert types == {WORKER_TYPE}, types
    assert re.search(rf"Adding \d+ node\(s\) of type {WORKER_TYPE}", log), log[-3000:]
    assert re.search(rf"Removing \d+ nodes of type {WORKER_TYPE} \(idle\)", log), log[-3000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_autoscale")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`quokka.role` = 'trial'")
    assert len(runs) == TRIALS
    assert {r.info.status for r in runs} == {"FINISHED"}
