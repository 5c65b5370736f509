"""The trial grid: IsoFLOP budgets, stable names, search spaces."""

from __future__ import annotations

import dataclasses

import pytest
from ray import tune

from quokka_ray.model import flops_per_token
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
    for budget in budgets:  # a parabola with a run to spare, or 3 sizes around the optimum
        assert sum(t.budget_flops == budget for t in trials) >= 3
    for t in trials:  # the quickstart's budgets count exact training FLOPs
        exact = t.exact_flops_per_token * t.tokens
        assert abs(exact - t.budget_flops) <= 0.02 * t.budget_flops
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


def _counting_exact_flops(experiment, **changes):
    return dataclasses.replace(experiment, study=dataclasses.replace(
        experiment.study, **{"budget_flops_rule": "exact", **changes}))


ISOFLOP_FILES = [REPO / "experiments" / "quickstart.py", EXPERIMENTS / "tiny_isoflop.py",
                 EXPERIMENTS / "tiny_isoflop_reuse.py"]


@pytest.mark.parametrize("path", ISOFLOP_FILES, ids=[p.stem for p in ISOFLOP_FILES])
def test_exact_budgets_are_the_exact_training_flops_of_every_trial(path, monkeypatch, tmp_path):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(tmp_path))  # a path only: nothing is read
    counted_6n = _counting_exact_flops(load_experiment(path), budget_flops_rule="6N")
    experiment = _counting_exact_flops(counted_6n)
    study, seq_len = experiment.study, experiment.data.seq_len
    trials = plan_trials(experiment)
    assert {t.budget_flops for t in trials} == set(study.budgets_flops)
    for t in trials:
        exact = flops_per_token(t.model, seq_len) * t.tokens
        assert abs(exact - t.budget_flops) <= study.budget_tolerance * t.budget_flops, t.name
        assert t.settings["study_point"]["budget_flops_rule"] == "exact"
    # The same budgets counted as 6 N D: every size trains more tokens, the smallest the most
    # more, so the sizes of one budget train unequal real compute.
    tokens_6n = {(t.budget_flops, t.non_embedding_params): t.tokens
                 for t in plan_trials(counted_6n)}
    for t in trials:
        if (t.budget_flops, t.non_embedding_params) in tokens_6n:
            assert t.tokens < tokens_6n[(t.budget_flops, t.non_embedding_params)], t.name
    for budget in study.budgets_flops:
        real_6n = [flops_per_token(t.model, seq_len) * t.tokens
                   for t in plan_trials(counted_6n) if t.budget_flops == budget]
        real = [flops_per_token(t.model, seq_len) * t.tokens
                for t in trials if t.budget_flops == budget]
        assert max(real_6n) / min(real_6n) > 1.3
        assert max(real) / min(real) <= (1 + study.budget_tolerance) / (1 - study.budget_tolerance)


def test_counting_6n_keeps_every_name_and_exact_flops_renames_every_trial():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    trials = plan_trials(experiment)
    # The rule enters a trial's settings only when it is not the default, so the studies that
    # count 6 N D keep the names (and checkpoints, MLflow runs) they had without it.
    assert all("budget_flops_rule" not in t.settings["study_point"] for t in trials)
    explicit = dataclasses.replace(experiment, study=dataclasses.replace(
        experiment.study, budget_flops_rule="6N"))
    assert [t.name for t in plan_trials(explicit)] == [t.name for t in trials]
    exact = {t.name for t in plan_trials(_counting_exact_flops(experiment))}
    assert not exact & {t.name for t in trials}


def test_exact_budgets_apply_the_tokens_per_param_window_to_their_own_tokens():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    sizes = [3_000, 12_000, 55_000, 100_000, 200_000]
    study = IsoFlopStudy(budgets_flops=[2e9, 2e10], model_sizes=sizes, min_steps=3,
                         budget_tolerance=0.05, budget_flops_rule="exact")
    every = plan_trials(dataclasses.replace(experiment, study=study))
    windowed = {t.name for t in plan_trials(dataclasses.replace(
        experiment, study=dataclasses.replace(study, tokens_per_param=(2, 60))))}
    assert windowed < {t.name for t in every}
    for t in every:
        assert (2 <= t.tokens / t.non_embedding_params <= 60) == (t.name in windowed), t.name


def test_exact_budget_too_small_for_any_size_is_an_error():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    # 1e9 FLOPs give the 12k model 26 steps of 16 x 32 tokens counted as 6 N D, 13 counted
    # exactly: enough under '6N', too few under 'exact'.
    study = IsoFlopStudy(budgets_flops=[1e9], model_sizes=[12_000], min_steps=20)
    fits = dataclasses.replace(experiment, study=study,
                               hyperparameters=Hyperparameters(batch_sequences=16))
    assert plan_trials(fits)
    with pytest.raises(ConfigError, match=r"budgets_flops: budget 1e\+09 FLOPs \(counted in "
                                          r"exact training FLOPs\) is too small for any model"):
        plan_trials(_counting_exact_flops(fits))


def test_a_budget_that_loses_every_size_at_one_grid_point_is_an_error():
    experiment = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    # At 512 sequences of 32 tokens a step, 1e9 FLOPs are 3.4 steps of the 3k model (3 steps
    # miss the budget by 11%) and under one step of the others; at 8 sequences all fit.
    grid = dataclasses.replace(experiment, hyperparameters=Hyperparameters(
        lr=3e-3, batch_sequences=tune.grid_search([8, 512])))
    with pytest.raises(ConfigError, match=r"budget 1e\+09 FLOPs is too small for any model in "
                                          r"model_sizes at batch_sequences=512 \("):
        plan_trials(grid)
    fine = dataclasses.replace(experiment, hyperparameters=Hyperparameters(
        lr=3e-3, batch_sequences=tune.grid_search([8, 16])))
    assert {(t.hyperparameters.batch_sequences, t.budget_flops) for t in plan_trials(fine)} == {
        (b, c) for b in (8, 16) for c in experiment.study.budgets_flops}
