"""The paper's study files at their tiny scale, end to end through Ray Tune, Ray Train and
MLflow, as a user runs them: `quokka run FILE`, then `quokka fit FILE`. The three files train
14 Ray Train runs: 8 trials, and 4 and 2 ladders, each ladder one run."""

from __future__ import annotations

from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.sweep.checks import ladders
from quokka_ray.sweep.loader import load_plan
from tests.conftest import REPO

STUDIES = REPO / "experiments"


def run_and_fit(name: str, tmp_path, monkeypatch, capsys):
    """Run and fit experiments/NAME.py in a scratch folder; its MLflow runs by role, the
    plan, and what `quokka fit` printed and wrote."""
    path = STUDIES / f"{name}.py"
    monkeypatch.chdir(tmp_path)  # the file's data cache, Tune's and MLflow's files land here
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(path), "--tracking-uri", uri,
                 "--storage-path", str(tmp_path / "runs")]) == 0
    experiment, trials = load_plan(path)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment.name)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    by_role: dict[str, list] = {}
    for run in runs:
        by_role.setdefault(run.data.tags.get("quokka.role"), []).append(run)
    capsys.readouterr()
    assert main(["fit", str(path), "--tracking-uri", uri, "--out", str(tmp_path / "fit")]) == 0
    printed = capsys.readouterr().out
    report = (tmp_path / "fit" / "report.md").read_text()
    return experiment, trials, by_role, printed, report


def _finished(runs) -> bool:
    return all(r.info.status == "FINISHED" and r.data.tags["quokka.outcome"] == "finished"
               for r in runs)


@pytest.mark.slow
def test_transfer_runs_one_optuna_search_per_point_and_compares_ar_with_dlm(
        ray_session, tmp_path, monkeypatch, capsys):
    experiment, trials, by_role, printed, report = run_and_fit(
        "transfer_ar_dlm", tmp_path, monkeypatch, capsys)
    runs = by_role["trial"]
    samples = experiment.search.num_samples
    assert experiment.search.algorithm == "optuna" and len(trials) == 4
    assert len(runs) == len(trials) * samples and _finished(runs)
    # Each study point got its own search of `samples` trials, at learning rates of its own.
    per_point = Counter(r.data.tags["quokka.trial"].rsplit("-", 1)[0] for r in runs)
    assert per_point == Counter({t.name: samples for t in trials})
    for spec in trials:
        rates = [float(r.data.params["lr"]) for r in runs
                 if r.data.tags["quokka.trial"].startswith(spec.name + "-")]
        assert len(set(rates)) == samples and all(1e-3 <= lr <= 1e-1 for lr in rates)
    assert f"{len(runs)} trials fitted" in printed
    # lr_opt(C) fitted for each kind, and the AR optimum's cost to the DLM at both budgets.
    for kind in report.split("\n## ")[1:3]:
        laws = kind.split("### Hyperparameter laws")[1]
        assert "\n| lr | " in laws
    transfer = report.split("## AR → DLM hyperparameter transfer")[1]
    assert all(f"| {budget:g} | lr " in transfer for budget in (3e9, 1e10))


@pytest.mark.slow
def test_data_constrained_study_trains_each_ladder_once_and_fits_its_law(
        ray_session, tmp_path, monkeypatch, capsys):
    experiment, trials, by_role, printed, report = run_and_fit(
        "data_constrained", tmp_path, monkeypatch, capsys)
    stable, branches = by_role["stable"], by_role["trial"]
    assert len(stable) == len(ladders(trials)) and _finished(stable)
    assert sorted(r.data.tags["quokka.trial"] for r in branches) == sorted(t.name for t in trials)
    assert _finished(branches)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")

    def steps(run) -> list[int]:
        return sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))

    # A stable phase trains once, up to its ladder's latest branch point; each decay trains
    # from its branch point to its end, and nothing else.
    points = {r.info.run_id: [] for r in stable}
    for run in branches:
        total, point = int(run.data.params["steps"]), int(run.data.params["branched_from_step"])
        assert 0 < point < total and steps(run) == list(range(point + 1, total + 1))
        points[run.data.params["stable_run_id"]].append(point)
    for run in stable:
        assert steps(run) == list(range(1, max(points[run.info.run_id]) + 1))
    trained = sum(int(r.data.params["tokens_trained"]) for r in stable + branches)
    from_scratch = sum(int(r.data.params["tokens"]) for r in branches)
    # Each ladder pays for its longest run's stable phase once, then every decay.
    decays = sum(int(r.data.params["tokens"]) - int(r.data.params["branched_from_step"])
                 * int(r.data.params["batch_tokens"]) for r in branches)
    longest = {}
    for run in branches:
        point = int(run.data.params["branched_from_step"]) * int(run.data.params["batch_tokens"])
        key = run.data.params["stable_run_id"]
        longest[key] = max(longest.get(key, 0), point)
    assert trained == sum(longest.values()) + decays < from_scratch
    assert f"{len(trials)} trials fitted" in printed
    assert "### Data-constrained law (Quokka eq. 14)" in report


@pytest.mark.slow
def test_weight_decay_ablation_runs_both_settings_at_one_and_many_epochs(
        ray_session, tmp_path, monkeypatch, capsys):
    experiment, trials, by_role, printed, report = run_and_fit(
        "weight_decay", tmp_path, monkeypatch, capsys)
    runs = by_role["trial"]
    assert len(by_role["stable"]) == 2 and _finished(by_role["stable"] + runs)
    settings = Counter((float(r.data.params["weight_decay"]), float(r.data.params["epochs"]))
                       for r in runs)
    assert settings == Counter({(0.1, 1.0): 1, (0.1, 16.0): 1, (0.0, 1.0): 1, (0.0, 16.0): 1})
    assert f"{len(trials)} trials fitted" in printed
