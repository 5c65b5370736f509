"""`quokka fit` on runs recorded in a real MLflow store (SQLite) the way trials record them:
one law per objective, only the trials of the sweep's plan, a fit run under the sweep, and the
data accounting every trial run carries. No training here: the runs' losses come from known
laws, so that what the fit recovers can be checked."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.config import ConfigError
from quokka_ray.data import prepare_shards, read_manifest, with_root
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep import IsoFlopStudy, load_plan, plan_trials, train_config
from quokka_ray.sweep.checks import corpus_from_manifest
from quokka_ray.sweep.stored_plan import check_unchanged, plan_record
from quokka_ray.sweep.trial import SweepContext, trial_params
from quokka_ray.tracking import MlflowRunTracker, MlflowStore
from tests.conftest import EXPERIMENTS, REPO

# Losses of each objective follow their own IsoFLOP optimum N_opt = k C^a.
EXPONENTS = {"dlm-masked-linear": 0.45, "dlm-uniform-linear": 0.60, "ar": 0.30}


def _objective_key(objective: ObjectiveConfig) -> str:
    return "ar" if objective.kind == "ar" else f"dlm-{objective.kernel}-{objective.schedule}"


def _record(store: MlflowStore, experiment, trials, corpus, loss_of) -> str:
    plan = plan_record(trials)
    parent = store.sweep_run(experiment.name, plan, {"trials": len(trials)})
    context = SweepContext(experiment=experiment, trials={t.name: t for t in trials},
                           tracking_uri=store.tracking_uri, storage_path="unused",
                           parent_run_id=parent, git_commit="test", corpus=corpus)
    for spec in trials:
        train = train_config(spec, experiment)
        run_id = store.trial_run(experiment.name, parent, spec.name,
                                 trial_params(spec, train, context))
        tracker = MlflowRunTracker(store.tracking_uri, run_id)
        tracker.log_metrics({"final_loss": loss_of(spec), "val_loss": loss_of(spec) + 0.01},
                            step=train.total_steps)
        tracker.close()
        store.end_run(run_id, "FINISHED", outcome="finished")
    store.end_run(parent, "FINISHED")
    return parent


def _iso_loss(spec) -> float:
    """A parabola in log N around each objective's own optimum."""
    exponent = EXPONENTS[_objective_key(spec.objective)]
    n_opt = 3e4 * (spec.budget_flops / 6e9) ** exponent
    return 3.0 + 0.5 * np.log(spec.non_embedding_params / n_opt) ** 2 - 0.01 * np.log(spec.budget_flops)


@pytest.fixture
def corpus(data_cache, monkeypatch):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    experiment, _ = load_plan(EXPERIMENTS / "tiny_isoflop.py")
    prepare_shards(experiment.data)
    return corpus_from_manifest(read_manifest(experiment.data))


def test_two_dlm_objectives_and_ar_give_three_laws(tmp_path, corpus, monkeypatch, capsys):
    experiment, _ = load_plan(EXPERIMENTS / "tiny_isoflop.py")
    experiment = dataclasses.replace(
        experiment, name="three_objectives",
        study=IsoFlopStudy(budgets_flops=[2e9, 6e9, 2e10],
                           model_sizes=[3_000, 12_000, 55_000, 100_000, 200_000],
                           min_steps=1, budget_tolerance=0.05),
        objectives=[ObjectiveConfig(kind="dlm"), ObjectiveConfig(kind="dlm", kernel="uniform"),
                    ObjectiveConfig(kind="ar")])
    trials = plan_trials(experiment)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    store = MlflowStore(uri)
    sweep = _record(store, experiment, trials, dataclasses.replace(corpus, train_tokens=10**9),
                    _iso_loss)

    out = tmp_path / "fit"
    assert main(["fit", "three_objectives", "--tracking-uri", uri, "--out", str(out),
                 "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    report = (out / "report.md").read_text()
    plots = sorted(p.name for p in out.glob("*.png"))
    for label in ("dlm-masked-linear-elbo", "dlm-uniform-linear-elbo", "ar"):
        assert label in report and label in printed
        assert any(label in name for name in plots), (label, plots)
    assert "surrogate" in report
    # Each objective's exponent is its own, not a pooled one.
    for label, key in (("dlm-masked-linear", "dlm-masked-linear"),
                       ("dlm-uniform-linear", "dlm-uniform-linear"), ("ar", "ar")):
        section = report.split(f"objective `{label}")[1] if label != "ar" else \
            report.split("objective `ar`")[1]
        row = next(line for line in section.splitlines() if line.startswith("| N_opt = k_N C^a"))
        assert float(row.split("|")[3]) == pytest.approx(EXPONENTS[key], abs=0.02), label
    trials_csv = (out / "trials.csv").read_text()
    assert trials_csv.count("\n") == len(trials) + 1
    client = MlflowClient(uri)
    fits = client.search_runs([client.get_experiment_by_name("three_objectives").experiment_id],
                              filter_string="tags.`quokka.role` = 'fit'")
    assert len(fits) == 1 and fits[0].data.tags["mlflow.parentRunId"] == sweep
    logged = {a.path for a in client.list_artifacts(fits[0].info.run_id)}
    assert "report.md" in logged and any(p.endswith(".png") for p in logged)
    assert not client.list_artifacts(sweep, "laws")  # the sweep run holds no fit's plots

    # The fit's options reach an experiment's fit as they reach a CSV fit.
    only = tmp_path / "isoflop-only"
    assert main(["fit", "three_objectives", "--tracking-uri", uri, "--out", str(only),
                 "--law", "isoflop", "--bootstrap", "20", "--seed", "3"]) == 0
    text = (only / "report.md").read_text()
    assert "IsoFLOP profiles" in text and "Parametric law" not in text
    assert "Intervals: profile likelihood of the joint fit" in text


def test_fit_counts_only_the_trials_of_the_plan(tmp_path, corpus, capsys):
    experiment, trials = load_plan(EXPERIMENTS / "tiny_isoflop.py")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    store = MlflowStore(uri)
    reseeded = dataclasses.replace(experiment, seed=7)
    _record(store, reseeded, plan_trials(reseeded), corpus, lambda spec: 9.0)
    with pytest.raises(ConfigError, match="seed: 7 -> 0"):
        check_unchanged(store.sweep_plan(experiment.name), plan_record(trials),
                        experiment=experiment.name, where=uri)
    with pytest.raises(LookupError, match="no trial runs"):
        from quokka_ray.analysis import fit_experiment

        fit_experiment(experiment.name, uri, tmp_path / "fit",
                       planned=[t.name for t in trials], n_bootstrap=0)


def test_sqlite_artifacts_live_beside_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    store = MlflowStore(f"sqlite:///{tmp_path}/store/mlflow.db")
    experiment_id = store.experiment_id("beside")
    location = store.client.get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "store" / "mlartifacts" / "beside").as_uri()


def test_quickstart_trials_record_unique_tokens_and_single_epochs(tmp_path, capsys):
    experiment, trials = load_plan(REPO / "experiments" / "quickstart.py")
    # The shards `quokka plan experiments/quickstart.py` prepares in the repository.
    experiment = dataclasses.replace(experiment, data=with_root(experiment.data,
                                                                str(REPO / "quokka_runs")))
    prepare_shards(experiment.data)
    corpus = corpus_from_manifest(read_manifest(experiment.data))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _record(MlflowStore(uri), experiment, trials, corpus, lambda spec: 3.0)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id],
                              filter_string="tags.`quokka.role` = 'trial'")
    assert len(runs) == len(trials) == 15
    for run in runs:
        unique, epochs = float(run.data.params["unique_tokens"]), float(run.data.params["epochs"])
        assert unique == corpus.train_tokens // 64 * 64
        assert epochs == pytest.approx(float(run.data.params["tokens"]) / unique)
        assert epochs <= 1.0
