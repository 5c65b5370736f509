"""The experiment file `quokka fit --propose` writes (commands/propose.py, commands/render.py):
the fitted experiment's settings written back as Python that rebuilds them exactly, a
FixedStudy at the sized model and D = C / (6 N), and a validated Prediction that no trial's
name depends on."""

from __future__ import annotations

import dataclasses
import math

import pytest
from ray import tune

from quokka_ray.commands.propose import (
    Sizer,
    budget_tag,
    objective_label,
    proposal_targets,
    proposed_experiment,
    write_proposal,
)
from quokka_ray.commands.render import Source
from quokka_ray.config import ConfigError
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.laws.proposal import ComputeOptimalProposal
from quokka_ray.sweep import (
    Experiment,
    FixedStudy,
    Hyperparameters,
    Prediction,
    load_experiment,
    load_plan,
)
from quokka_ray.sweep.identity import canonical
from tests.conftest import EXPERIMENTS

PREDICTION = dict(fitted_experiment="tiny_isoflop", objective="dlm-masked-linear-elbo-uniform",
                  law="isoflop", budget_flops=1.2e10, n_opt=40_000.0, d_opt=50_000.0,
                  non_embedding_params=38_000, tokens=52_000, final_loss=3.1,
                  n_opt_interval=(20_000.0, 80_000.0), final_loss_interval=(2.9, 3.3))


def _proposal(sizer: Sizer, label: str, budget: float = 1.2e10) -> ComputeOptimalProposal:
    run = sizer(label, 40_000.0, budget)
    return ComputeOptimalProposal(
        objective=label, law="isoflop", budget_flops=budget, n_opt=40_000.0,
        d_opt=budget / 240_000.0, n_opt_interval=(20_000.0, 80_000.0), run=run,
        final_loss=3.1, final_loss_interval=(2.9, 3.3), residual_sd=0.05,
        largest_fitted_flops=6e9, fitted_sizes=(12_000.0, 100_000.0), fitted_runs=6,
        replicates=200)


def test_search_spaces_and_configs_are_written_back_exactly(tmp_path):
    experiment = dataclasses.replace(
        load_experiment(EXPERIMENTS / "tiny_isoflop.py"),
        hyperparameters=Hyperparameters(
            lr=tune.loguniform(1e-4, 1e-2), weight_decay=tune.grid_search([0.0, 0.1]),
            batch_sequences=tune.choice([4, 8]), warmup_fraction=tune.quniform(0.0, 0.2, 0.05),
            betas=(0.9, 0.99)))
    source = Source()
    text = source.call(experiment, wrap=True)
    path = tmp_path / "written.py"
    path.write_text("from ray import tune\nfrom quokka_ray.sweep import *  # noqa\n"
                    "from quokka_ray.sweep import Resources\n"
                    f"experiment = {text}\n")
    again = load_experiment(path)
    assert canonical(again) == canonical(experiment)
    assert source.uses_tune and {"Experiment", "Hyperparameters", "DataConfig"} <= source.classes
    assert "max_failures" not in text  # fields at their default are left out

    with pytest.raises(ConfigError, match="Hyperparameters.lr"):
        Source().call(dataclasses.replace(experiment.hyperparameters,
                                          lr=tune.sample_from(lambda _: 1e-3)))


def test_proposal_file_trains_the_sized_run_with_the_fitted_settings(tmp_path):
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    (label,) = proposal_targets(experiment, 1.2e10, tmp_path)
    targets = proposal_targets(experiment, 1.2e10, tmp_path)
    target = targets[label]
    assert target.name == "tiny_isoflop-proposal-1.2e10" and label == "dlm-masked-linear-elbo-uniform"
    sizer = Sizer(experiment)
    proposal = _proposal(sizer, label)
    run = proposal.run
    assert run.tokens % (8 * 32) == 0  # whole batches of 8 sequences of 32 tokens
    assert abs(6 * run.non_embedding_params * run.tokens - 1.2e10) < 6 * run.non_embedding_params * 256

    path = write_proposal(experiment, target, proposal, command="quokka fit x.py --propose 1.2e10",
                          unique_tokens=1e9)
    assert path == tmp_path / "tiny_isoflop-proposal-1.2e10.py"
    text = path.read_text()
    assert "predicted final loss 3.1000 (95% prediction interval 2.9000 - 3.3000)" in text
    written, trials = load_plan(path)
    assert written.name == target.name
    assert written.study == FixedStudy(model_sizes=[run.non_embedding_params], tokens=[run.tokens])
    (trial,) = trials
    assert (trial.non_embedding_params, trial.tokens) == (run.non_embedding_params, run.tokens)
    for name in ("data", "hyperparameters", "evaluation", "resources", "seed", "objectives"):
        assert canonical(getattr(written, name)) == canonical(getattr(experiment, name)), name
    assert written.prediction.final_loss == 3.1
    assert written.prediction.final_loss_interval == (2.9, 3.3)
    assert written.prediction.non_embedding_params == run.non_embedding_params


def test_a_longer_run_gets_a_corpus_that_holds_it_once(tmp_path):
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    targets = proposal_targets(experiment, 1.2e10, tmp_path)
    (label,) = targets
    proposal = _proposal(Sizer(experiment), label)
    unique = proposal.run.tokens / 2
    path = write_proposal(experiment, targets[label], proposal, command="quokka fit",
                          unique_tokens=unique)
    written = load_experiment(path)
    assert written.data.max_corpus_bytes >= 2 * experiment.data.max_corpus_bytes
    assert "max_corpus_bytes raised from 200,000" in path.read_text()
    # With the fitted corpus's bytes per token (whole documents read past max_corpus_bytes),
    # the estimate `quokka run` would make, when it asks for more.
    proposed, (note,) = proposed_experiment(experiment, targets[label], proposal, "fitted",
                                            unique, bytes_per_token=20.0)
    assert proposed.data.max_corpus_bytes == math.ceil(1.05 * 20.0 * proposal.run.tokens)
    assert f"to {proposed.data.max_corpus_bytes:,}" in note


def test_several_objectives_get_one_file_each(tmp_path):
    experiment = dataclasses.replace(load_experiment(EXPERIMENTS / "tiny_isoflop.py"),
                                     objectives=[ObjectiveConfig(), ObjectiveConfig(kind="ar")])
    targets = proposal_targets(experiment, 3e12, tmp_path, tmp_path / "next.py")
    assert {t.path.name for t in targets.values()} == {
        "next-dlm-masked-linear-elbo-uniform.py", "next-ar.py"}
    assert targets["ar"].name == "tiny_isoflop-proposal-3e12-ar"
    assert budget_tag(1.5e12) == "1.5e12" and budget_tag(6e9) == "6e9" and objective_label(ObjectiveConfig(kind="ar")) == "ar"
    sizer = Sizer(experiment)
    ar = sizer("ar", 40_000.0, 1.2e10)
    dlm = sizer("dlm-masked-linear-elbo-uniform", 40_000.0, 1.2e10)
    assert ar.non_embedding_params == dlm.non_embedding_params  # same shape, causal or not
    with pytest.raises(ValueError, match="objective 'dlm-uniform"):
        sizer("dlm-uniform-linear-elbo-uniform", 40_000.0, 1.2e10)


def test_a_prediction_is_checked():
    """(That it names no trial is in test_identity.py.)"""
    assert Prediction(**PREDICTION).final_loss == 3.1
    for field, value, fragment in [
        ("final_loss", -1.0, "Prediction.final_loss"),
        ("final_loss_interval", (3.3, 2.9), "Prediction.final_loss_interval"),
        ("law", "chinchilla", "Prediction.law"),
        ("tokens", 0, "Prediction.tokens"),
        ("confidence", 1.5, "Prediction.confidence"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            Prediction(**{**PREDICTION, field: value})
    with pytest.raises(ConfigError, match="Experiment.prediction"):
        Experiment(study=FixedStudy(model_sizes=[12_000], tokens=[10_000]), prediction=3.1)
