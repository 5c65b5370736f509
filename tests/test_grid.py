"""The trial grid: IsoFLOP budgets, stable names, search spaces."""

from __future__ import annotations

import dataclasses

import pytest
from ray import tune

from quokka_ray.sweep import (
    ConfigError,
    FixedStudy,
    Hyperparameters,
    IsoFlopStudy,
    ObjectiveConfig,
    load_experiment,
    plan_trials,
)
from tests.conftest import EXPERIMENTS, REPO


def test_quickstart_trials_sit_on_their_budgets():
    experiment = load_experiment(REPO / "experiments" / "quickstart.py")
    trials = plan_trials(experiment)
    budgets = {t.budget_flops for t in trials}
    assert len(budgets) >= 3
    for budget in budgets:
        assert sum(t.budget_flops == budget for t in trials) >= 4
    for t in trials:
        assert abs(6 * t.non_embedding_params * t.tokens - t.budget_flops) <= 0.02 * t.budget_flops
        assert t.flops == 6 * t.non_embedding_params * t.tokens


def test_names_are_stable_and_distinct():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    first = [t.name for t in plan_trials(experiment)]
    again = [t.name for t in plan_trials(load_experiment(EXPERIMENTS / "tiny_isoflop.py"))]
    assert first == again
    assert len(set(first)) == len(first)
    changed = dataclasses.replace(experiment, hyperparameters=Hyperparameters(lr=1e-3, batch_sequences=8))
    assert not set(first) & {t.name for t in plan_trials(changed)}


def test_grid_values_multiply_trials_and_random_spaces_stay_searched():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    base = len(plan_trials(experiment))
    grid = dataclasses.replace(experiment, hyperparameters=Hyperparameters(
        lr=tune.grid_search([1e-3, 3e-3]), batch_sequences=8),
        objectives=[ObjectiveConfig(kind="dlm"), ObjectiveConfig(kind="ar")])
    trials = plan_trials(grid)
    assert len(trials) == 4 * base
    assert {t.kind for t in trials} == {"dlm", "ar"}
    assert {t.model.causal for t in trials if t.kind == "ar"} == {True}
    searched = dataclasses.replace(experiment, hyperparameters=Hyperparameters(
        lr=tune.loguniform(1e-4, 1e-2), batch_sequences=8))
    assert all(t.searched == ("lr",) for t in plan_trials(searched))


def test_budget_too_small_for_any_model_is_an_error():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    tiny = dataclasses.replace(experiment, study=IsoFlopStudy(budgets_flops=[1e6],
                                                              model_sizes=[12_000, 55_000]))
    with pytest.raises(ConfigError, match="budgets_flops: budget 1e\\+06"):
        plan_trials(tiny)


def test_fixed_study_uses_given_tokens():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    fixed = dataclasses.replace(experiment, study=FixedStudy(model_sizes=[12_000], tokens=[25_600]))
    (trial,) = plan_trials(fixed)
    assert trial.tokens == 25_600 and trial.budget_flops is None


def test_wrong_types_name_the_field():
    with pytest.raises(ConfigError, match="Hyperparameters.lr: expected float"):
        Hyperparameters(lr="fast")
    with pytest.raises(ConfigError, match="IsoFlopStudy.model_sizes"):
        IsoFlopStudy(budgets_flops=[1e9], model_sizes=[1.5])
    with pytest.raises(ConfigError, match="Hyperparameters.batch_sequences"):
        Hyperparameters(batch_sequences=tune.choice([8, "x"]) if False else tune.grid_search([8, "x"]))


def _every_choice(path) -> list[dict[str, str]]:
    """Every combination of the Literal settings of an experiment file's make_experiment."""
    import itertools
    import runpy
    import typing

    maker = runpy.run_path(str(path)).get("make_experiment")
    if maker is None:
        return [{}]
    choices = {name: [str(c) for c in typing.get_args(hint)]
               for name, hint in typing.get_type_hints(maker).items()
               if typing.get_origin(hint) is typing.Literal}
    return [dict(zip(choices, combo, strict=True))
            for combo in itertools.product(*choices.values())]


EXAMPLES = [(path, settings) for path in sorted((REPO / "experiments").glob("*.py"))
            for settings in _every_choice(path)]


@pytest.mark.parametrize(("path", "settings"), EXAMPLES,
                         ids=[p.stem + "".join(f"-{v}" for v in s.values()) for p, s in EXAMPLES])
def test_every_example_experiment_plans(path, settings):
    experiment = load_experiment(path, settings)
    trials = plan_trials(experiment)
    assert trials and experiment.name.startswith(path.stem)
    assert all(t.non_embedding_params > 0 for t in trials)


#: Files with one scale only: the quickstart is a laptop walk-through, not a study of the paper.
SINGLE_SCALE = {"quickstart"}
STUDIES = [p for p in sorted((REPO / "experiments").glob("*.py")) if p.stem not in SINGLE_SCALE]


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_study_has_a_tiny_and_a_paper_scale_with_their_own_names(path):
    scales = [s["scale"] for s in _every_choice(path) if "scale" in s]
    assert {"tiny", "paper"} <= set(scales)
    # One MLflow experiment per scale, so that no fit mixes the runs of two scales.
    names = {load_experiment(path, {"scale": s}).name for s in scales}
    assert names == {f"{path.stem}-{s}" for s in scales}


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_the_paper_scale_uses_the_papers_recipe_on_gpus(path):
    experiment = load_experiment(path, {"scale": "paper"})
    assert experiment.data.tokenizer == "gpt2" and experiment.data.seq_len == 2048
    assert experiment.data.source != "stdlib"
    assert experiment.resources.use_gpu


def test_tokens_per_param_gives_each_budget_its_window_of_sizes():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    sizes = [3_000, 12_000, 55_000, 100_000, 200_000]
    study = IsoFlopStudy(budgets_flops=[2e9, 2e10], model_sizes=sizes, min_steps=3,
                         budget_tolerance=0.05)
    every = plan_trials(dataclasses.replace(experiment, study=study))
    windowed = plan_trials(dataclasses.replace(
        experiment, study=dataclasses.replace(study, tokens_per_param=(2, 60))))
    assert {t.name for t in windowed} < {t.name for t in every}  # the same trials, fewer
    for t in every:
        kept = 2 <= t.tokens / t.non_embedding_params <= 60
        assert kept == (t.name in {w.name for w in windowed}), t.name
    for budget in (2e9, 2e10):
        assert any(t.budget_flops == budget for t in windowed)
    # The window moves up with the budget.
    smallest = {b: min(t.non_embedding_params for t in windowed if t.budget_flops == b)
                for b in (2e9, 2e10)}
    assert smallest[2e10] > smallest[2e9]
    narrow = dataclasses.replace(study, tokens_per_param=(1e4, 2e4))
    with pytest.raises(ConfigError, match="fits no model.*tokens per parameter outside"):
        plan_trials(dataclasses.replace(experiment, study=narrow))
    with pytest.raises(ConfigError, match="IsoFlopStudy.tokens_per_param"):
        IsoFlopStudy(budgets_flops=[1e9], model_sizes=[12_000], tokens_per_param=(10, 1))
