"""ASHA through Ray Tune and Ray Train: trials stopped early are told apart in MLflow from
trials that ran to the end, and `quokka fit` fits only the latter and says how many it left
out."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from tests.conftest import EXPERIMENTS

EXPERIMENT = EXPERIMENTS / "tiny_asha.py"


@pytest.mark.cluster
def test_asha_stops_some_trials_and_fit_leaves_them_out(ray_session, tmp_path, data_cache,
                                                          monkeypatch, capsys):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(EXPERIMENT), "--tracking-uri", uri,
                 "--storage-path", str(tmp_path / "runs")]) == 0
    log = capsys.readouterr().out
    assert "stopped early" in log

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_asha")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`quokka.role` = 'trial'")
    assert len(runs) == 6
    finished = [r for r in runs if r.data.tags.get("quokka.outcome") == "finished"]
    stopped = [r for r in runs if r.data.tags.get("quokka.outcome") == "stopped_early"]
    assert finished and stopped and len(finished) + len(stopped) == 6
    for run in finished:
        assert run.info.status == "FINISHED"
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")}
        assert max(steps) == int(run.data.params["steps"]) == 40
    for run in stopped:
        assert run.info.status == "KILLED"
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")}
        assert max(steps) < 40
    assert any(float(r.data.params["lr"]) == 1e-2 for r in finished)

    out_dir = tmp_path / "fit"
    assert main(["fit", str(EXPERIMENT), "--tracking-uri", uri, "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(finished)} trials fitted; left out: {len(stopped)} stopped_early" in printed
    fitted = (out_dir / "trials.csv").read_text().splitlines()[1:]
    assert len(fitted) == len(finished)
    assert f"{len(stopped)} trials stopped early" in (out_dir / "report.md").read_text()
