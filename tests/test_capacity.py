"""A trial whose workers fit no node: it waits on a cluster that an autoscaler may grow, and
`quokka run` stops with one line on a cluster that nothing grows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from quokka_ray.config import ConfigError
from quokka_ray.sweep import Resources
from quokka_ray.sweep.capacity import capacity_verdict, worker_bundle
from tests.conftest import EXPERIMENTS, REPO

GPU = Resources(workers_per_trial=8, use_gpu=True)
HEAD = {"CPU": 0.0, "memory": 1e9}
GPU_NODE = {"CPU": 192.0, "GPU": 8.0}
CPU_NODE = {"CPU": 2.0}


def test_a_worker_asks_for_its_cpus_and_one_gpu():
    assert worker_bundle(GPU) == {"CPU": 1.0, "GPU": 1.0}
    assert worker_bundle(Resources(cpus_per_worker=2)) == {"CPU": 2.0}


def test_a_node_that_holds_a_worker_is_enough():
    assert capacity_verdict(GPU, [HEAD, GPU_NODE], None, can_grow=False) is None


def test_gpu_trials_wait_on_a_cluster_that_may_grow():
    """An autoscaled cluster of cluster/ starts with its head alone."""
    line = capacity_verdict(GPU, [HEAD], None, can_grow=True)
    assert line and "wait for the autoscaler" in line and "1 GPU" in line


def test_the_autoscalers_node_types_decide_when_ray_knows_them():
    assert "wait" in capacity_verdict(GPU, [HEAD], [HEAD, GPU_NODE], can_grow=False)
    with pytest.raises(ConfigError, match=r"^Resources\.use_gpu: True: .*adds none that does"):
        capacity_verdict(GPU, [HEAD], [HEAD, CPU_NODE], can_grow=True)


def test_gpu_trials_fail_in_one_line_on_a_cluster_that_cannot_grow():
    with pytest.raises(ConfigError) as err:
        capacity_verdict(GPU, [CPU_NODE], None, can_grow=False)
    message = str(err.value)
    assert message.startswith("Resources.use_gpu: True: each worker needs 1 CPU, 1 GPU")
    assert "the largest has 2 CPU, 0 GPU" in message and "\n" not in message


def test_too_many_cpus_per_worker_fail_on_a_cluster_that_cannot_grow():
    with pytest.raises(ConfigError, match=r"^Resources\.cpus_per_worker: 4"):
        capacity_verdict(Resources(cpus_per_worker=4), [CPU_NODE], None, can_grow=False)


@pytest.mark.slow
def test_quokka_run_of_gpu_trials_on_this_machines_cluster_stops_in_one_line(tmp_path, data_cache,
                                                                              monkeypatch):
    """No GPU here and no autoscaler behind `quokka run`'s own cluster: the sweep would wait
    for ever, so it stops before any MLflow run exists."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine may have a GPU")
    experiment = tmp_path / "tiny_gpu.py"
    experiment.write_text((EXPERIMENTS / "tiny_job.py").read_text().replace(
        "Resources(workers_per_trial=1)", "Resources(workers_per_trial=1, use_gpu=True)"))
    assert "use_gpu=True" in experiment.read_text()
    # The shards first, in this process (the driver would start Ray to prepare them).
    from quokka_ray.data import prepare_shards, with_root
    from quokka_ray.sweep import load_experiment

    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    prepare_shards(with_root(load_experiment(experiment).data, None), workers=0)
    done = subprocess.run(
        [sys.executable, "-m", "quokka_ray.cli", "run", str(experiment),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage-path", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env=dict(os.environ))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("quokka: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "tiny_gpu.py: Resources.use_gpu: True: each worker needs 1 CPU, 1 GPU" in errors[0]
    assert "sweep run" not in done.stdout, "the check comes before the sweep's MLflow run"
