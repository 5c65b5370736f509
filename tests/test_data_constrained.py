"""A data-constrained study end to end (Ray Tune, Ray Train, MLflow): each (U, N) ladder trains
its stable phase once and branches every decay from it, and MLflow's records add up to the
stable phases plus the decays, not to the sum of the runs trained from scratch."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.sweep.loader import load_plan
from tests.conftest import EXPERIMENTS

EXPERIMENT = EXPERIMENTS / "tiny_data_constrained.py"
BATCH_TOKENS = 8 * 32


@pytest.mark.cluster  # about 2 minutes of Ray sweeps: make test-cluster
def test_a_ladder_trains_each_stable_phase_once(ray_session, tmp_path, data_cache, monkeypatch,
                                                capsys):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(EXPERIMENT), "--tracking-uri", uri,
                 "--storage-path", str(tmp_path / "runs")]) == 0
    _, trials = load_plan(EXPERIMENT)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_data_constrained")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    stable = [r for r in runs if r.data.tags.get("quokka.role") == "stable"]
    branches = [r for r in runs if r.data.tags.get("quokka.role") == "trial"]
    assert len(stable) == 2  # one per (U, N)
    assert sorted(r.data.tags["quokka.trial"] for r in branches) == sorted(t.name for t in trials)

    def steps(run) -> list[int]:
        return sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))

    # 1, 2 and 4 epochs of 10 steps; each decays over its last 20%: from steps 8, 16 and 32.
    for run in stable:
        assert run.info.status == "FINISHED"
        assert steps(run) == list(range(1, 33))  # trained once, up to the latest branch point
    by_id = {r.info.run_id: r for r in stable}
    for run in branches:
        assert run.info.status == "FINISHED" and run.data.tags["quokka.outcome"] == "finished"
        total = int(run.data.params["steps"])
        point = int(run.data.params["branched_from_step"])
        assert (total, point) in {(10, 8), (20, 16), (40, 32)}
        assert steps(run) == list(range(point + 1, total + 1))  # its decay alone
        assert run.data.params["stable_run_id"] in by_id
        assert "final_loss" in run.data.metrics and "val_loss" in run.data.metrics

    trained = sum(int(r.data.params["tokens_trained"]) for r in stable + branches)
    from_scratch = sum(int(r.data.params["tokens"]) for r in branches)
    assert trained == 2 * (32 + 2 + 4 + 8) * BATCH_TOKENS
    assert from_scratch == 2 * (10 + 20 + 40) * BATCH_TOKENS

    capsys.readouterr()
    assert main(["fit", str(EXPERIMENT), "--tracking-uri", uri,
                 "--out", str(tmp_path / "fit")]) == 0
    assert f"{len(trials)} trials fitted" in capsys.readouterr().out


@pytest.mark.cluster  # a second sweep of ladders: longer than `make test` affords
def test_an_isoflop_study_reuses_each_sizes_stable_phase(ray_session, tmp_path, data_cache,
                                                         monkeypatch, capsys):
    """IsoFlopStudy(reuse_stable_phase=True): each size's budgets are cooldowns of one stable
    phase, and the IsoFLOP fit reads them as any other trials."""
    experiment_file = EXPERIMENTS / "tiny_isoflop_reuse.py"
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(experiment_file), "--tracking-uri", uri,
                 "--storage-path", str(tmp_path / "runs")]) == 0
    _, trials = load_plan(experiment_file)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_isoflop_reuse")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    stable = [r for r in runs if r.data.tags.get("quokka.role") == "stable"]
    branches = [r for r in runs if r.data.tags.get("quokka.role") == "trial"]
    assert len(stable) == len({t.model for t in trials}) == 3
    assert sorted(r.data.tags["quokka.trial"] for r in branches) == sorted(t.name for t in trials)
    assert all(r.info.status == "FINISHED" for r in stable + branches)
    trained = sum(int(r.data.params["tokens_trained"]) for r in stable + branches)
    assert trained < sum(int(r.data.params["tokens"]) for r in branches)
    capsys.readouterr()
    assert main(["fit", str(experiment_file), "--tracking-uri", uri,
                 "--out", str(tmp_path / "fit")]) == 0
    assert f"{len(trials)} trials fitted" in capsys.readouterr().out
