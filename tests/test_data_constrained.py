"""Cooldown reuse in an IsoFLOP study end to end (Ray Tune, Ray Train, MLflow): each size's
budgets branch from one stable phase. The data-constrained study's ladders are tested on
experiments/data_constrained.py itself (tests/test_study_files.py)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.sweep.loader import load_plan
from tests.conftest import EXPERIMENTS


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
