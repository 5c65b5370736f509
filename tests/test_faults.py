"""A Ray Train worker killed with SIGKILL after a checkpoint: the run resumes by itself from
the last committed checkpoint, continues the uninterrupted trajectory, and its MLflow run holds
exactly one training-loss value per step. Run by `make test-cluster`."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.sweep import load_plan
from tests.conftest import EXPERIMENTS

EXPERIMENT = EXPERIMENTS / "tiny_kill.py"


def train_worker_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def kill_after(checkpoint: Path, killed: list[int], deadline_s: float = 300) -> None:
    """SIGKILL the Train worker once `checkpoint` exists (a later one than the first, so that
    the first is surely committed)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if checkpoint.exists():
            for pid in train_worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return
        time.sleep(0.02)


@pytest.mark.cluster
def test_a_killed_worker_resumes_the_same_trajectory(ray_session, tmp_path, data_cache,
                                                     monkeypatch, capsys):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    _, (spec,) = load_plan(EXPERIMENT)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "runs"
    killed: list[int] = []
    killer = threading.Thread(target=kill_after, args=(
        storage / "train" / spec.name / "step_00000020", killed), daemon=True)
    killer.start()
    assert main(["run", str(EXPERIMENT), "--tracking-uri", uri, "--storage-path", str(storage)]) == 0
    killer.join()
    assert killed, "the worker was never killed"
    capsys.readouterr()

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_kill")
    (run,) = client.search_runs([experiment.experiment_id],
                                filter_string="tags.`quokka.role` = 'trial'")
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    steps = sorted(m.step for m in history)
    assert steps == list(range(1, 151)), "one training-loss value per step"
    recorded = {m.step: m.value for m in history}

    assert main(["train", str(EXPERIMENT), "--json", "--storage-path", str(tmp_path / "whole")]) == 0
    whole = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    assert [r["step"] for r in whole] == steps
    for row in whole:
        assert recorded[row["step"]] == pytest.approx(row["loss"], rel=1e-6), row["step"]


@pytest.mark.cluster
def test_an_elastic_run_grows_to_two_workers_on_the_same_trajectory(ray_session, tmp_path, data_cache,
                                                                     monkeypatch, capsys):
    """On a cluster of our own (a subprocess: the session's Ray is another cluster) with room
    for one worker; a second node joins after the first checkpoint."""
    import subprocess
    import sys

    from tests.conftest import REPO

    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    experiment = EXPERIMENTS / "tiny_elastic.py"
    out = tmp_path / "elastic.json"
    subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "elastic_run.py"),
                    str(experiment), str(out), str(tmp_path / "storage")], cwd=REPO,
                   check=True, timeout=600)
    rows = [r for r in json.loads(out.read_text()) if "tokens_per_s" in r]
    last = {r["step"]: r for r in rows}  # a step trained again after the resize: its last value
    assert sorted(last) == list(range(1, 601))
    assert {r["workers"] for r in rows} == {1, 2}, "the run never grew"
    assert last[600]["workers"] == 2

    assert main(["train", str(experiment), "--workers", "1", "--json", "--storage-path",
                 str(tmp_path / "one")]) == 0
    one = {json.loads(line)["step"]: json.loads(line) for line in
           capsys.readouterr().out.splitlines() if line.startswith("{")}
    for step, row in last.items():
        assert row["train_loss"] == pytest.approx(one[step]["loss"], rel=1e-5), step
