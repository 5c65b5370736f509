"""Training under Ray Train itself (gloo on CPUs): the trajectory does not depend on the
number of workers, and a diverged run stops, is marked so in MLflow and is not retried while
the rest of its sweep finishes."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from tests.conftest import EXPERIMENTS


def _steps(capsys, argv) -> list[dict]:
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")]


@pytest.mark.cluster
def test_one_and_two_ray_train_workers_follow_one_trajectory(ray_session, tmp_path, data_cache,
                                                             monkeypatch, capsys):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    common = ["train", str(EXPERIMENTS / "tiny_job.py"), "--steps", "20", "--json",
              "--storage-path", str(tmp_path)]
    one = _steps(capsys, [*common, "--workers", "1"])
    two = _steps(capsys, [*common, "--workers", "2"])
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 21))
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), a["step"]
        assert b["tokens"] == a["tokens"]


@pytest.mark.cluster
def test_a_diverged_run_is_marked_and_not_retried(ray_session, tmp_path, data_cache, monkeypatch,
                                                   capsys):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(EXPERIMENTS / "tiny_diverge.py"), "--tracking-uri", uri,
                 "--storage-path", str(tmp_path / "runs")]) == 0
    assert "DIVERGED" in capsys.readouterr().out
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_diverge")
    runs = {float(r.data.params["lr"]): r for r in client.search_runs(
        [experiment.experiment_id], filter_string="tags.`quokka.role` = 'trial'")}
    assert set(runs) == {3e-3, 1e30}
    sane, diverged = runs[3e-3], runs[1e30]
    assert sane.info.status == "FINISHED" and sane.data.tags["quokka.outcome"] == "finished"
    assert diverged.info.status == "FAILED" and diverged.data.tags["quokka.outcome"] == "diverged"
    history = client.get_metric_history(diverged.info.run_id, "train_loss")
    steps = [m.step for m in history]
    # Not retried: a restarted worker would log its first steps again.
    assert len(steps) == len(set(steps)) and max(steps) < 12
    assert client.get_metric_history(diverged.info.run_id, "diverged")[-1].value == 1.0
