"""A trial's name digests everything that shapes its result, and nothing that does not."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from ray import tune

from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep import load_experiment, plan_trials
from quokka_ray.sweep.identity import canonical, changed_settings
from quokka_ray.sweep.spec import Prediction, Resources
from quokka_ray.train.config import (
    EvaluationConfig,
    Hyperparameters,
    PerformanceConfig,
    TrainConfig,
)
from tests.conftest import EXPERIMENTS, REPO

BASE = EXPERIMENTS / "tiny_isoflop.py"

# For every field of every config a trial's result depends on: another valid value.
CHANGES = {
    Hyperparameters: {"lr": 1e-3, "weight_decay": 0.0, "batch_sequences": 4,
                      "lr_schedule": "wsd", "warmup_fraction": 0.1, "decay_fraction": 0.3,
                      "min_lr_ratio": 0.0, "betas": (0.9, 0.99), "eps": 1e-6,
                      "grad_clip_norm": 0.5, "warmup_steps": 3},
    ObjectiveConfig: {"kind": "ar", "kernel": "uniform", "schedule": "cosine", "loss": "maskgit",
                      "timesteps": "antithetic", "t_min": 0.02, "curriculum_width": 0.3},
    DataConfig: {"source": "corpus.jsonl", "text_field": "content", "tokenizer": "gpt2",
                 "seq_len": 64, "max_corpus_bytes": 300_000, "validation_sequences": 8,
                 "unique_tokens": 100_000, "source_config": "sample-10BT",
                 "source_split": "validation", "source_revision": "v1.0", "shard_tokens": 1_000},
    EvaluationConfig: {"eval_every_steps": 2, "validation_samples_per_sequence": 3,
                       "smoothing_window_steps": 7, "smoothing_max_fraction": 0.2, "seed": 1},
}
# Where a trial runs and what is kept: none of it changes its trajectory or its measurements.
UNCHANGED = {
    "resources": Resources(workers_per_trial=(1, 2), cpus_per_worker=2.0, max_failures=5,
                           max_concurrent_trials=1, micro_batch_sequences=2),
    "checkpoint_every_steps": 7,
    "performance": PerformanceConfig(compile=True, activation_checkpointing=True,
                                     attention="math"),
    "storage_path": "/elsewhere",
    "tracking_uri": "sqlite:////elsewhere/mlflow.db",
    # What a fitted law predicts for the run is a record beside it, not a setting of it.
    "prediction": Prediction(fitted_experiment="fitted", objective="dlm", law="isoflop",
                             budget_flops=1e10, n_opt=4e4, d_opt=4e4,
                             non_embedding_params=38_000, tokens=44_000, final_loss=3.0),
}


def _names(experiment) -> set[str]:
    return {t.name for t in plan_trials(experiment)}


def _with(experiment, cls, name, value):
    if cls is Hyperparameters:
        return dataclasses.replace(experiment, hyperparameters=dataclasses.replace(
            experiment.hyperparameters, **{name: value}))
    if cls is ObjectiveConfig:
        return dataclasses.replace(experiment, objectives=[dataclasses.replace(
            experiment.objectives[0], **{name: value})])
    if cls is DataConfig:
        return dataclasses.replace(experiment, data=dataclasses.replace(
            experiment.data, **{name: value}))
    return dataclasses.replace(experiment, evaluation=dataclasses.replace(
        experiment.evaluation, **{name: value}))


def test_every_setting_that_shapes_a_result_has_a_change_below():
    for cls, changes in CHANGES.items():
        names = {f.name for f in dataclasses.fields(cls)}
        left_out = {"cache_dir"} if cls is DataConfig else set()
        assert names - left_out == set(changes), cls.__name__


@pytest.mark.parametrize("cls,name", [(c, n) for c, ch in CHANGES.items() for n in ch],
                         ids=lambda v: getattr(v, "__name__", v))
def test_changing_a_setting_renames_every_trial(cls, name):
    experiment = load_experiment(BASE)
    before = _names(experiment)
    changed = _with(experiment, cls, name, CHANGES[cls][name])
    assert not before & _names(changed), f"{cls.__name__}.{name} kept a trial's name"


def test_seed_renames_every_trial():
    experiment = load_experiment(BASE)
    assert not _names(experiment) & _names(dataclasses.replace(experiment, seed=1))


def test_where_a_trial_runs_keeps_its_name():
    experiment = load_experiment(BASE)
    before = _names(experiment)
    for field, value in UNCHANGED.items():
        assert _names(dataclasses.replace(experiment, **{field: value})) == before, field
    moved = dataclasses.replace(experiment.data, cache_dir="/another/cache")
    assert _names(dataclasses.replace(experiment, data=moved)) == before


def test_only_the_affected_trials_are_renamed():
    experiment = load_experiment(BASE)
    wider = dataclasses.replace(experiment, study=dataclasses.replace(
        experiment.study, budgets_flops=[*experiment.study.budgets_flops, 1.2e10]))
    assert _names(experiment) < _names(wider)


def test_train_config_has_no_setting_outside_the_name():
    """A new TrainConfig field must either be digested into the name or be listed here."""
    digested = {"model", "objective", "data", "hyperparameters", "evaluation", "total_steps",
                "seed"}
    not_results = {"micro_batch_sequences", "checkpoint_every_steps", "cpu_threads_per_worker",
                   "log_every_steps", "performance", "checkpoint_at_steps"}
    assert {f.name for f in dataclasses.fields(TrainConfig)} == digested | not_results
    settings = plan_trials(load_experiment(BASE))[0].settings
    assert {"model", "objective", "data", "hyperparameters", "evaluation", "seed",
            "tokens"} <= set(settings)


def test_search_spaces_are_named_by_their_fields_not_their_address():
    a, b = tune.loguniform(1e-4, 1e-2), tune.loguniform(1e-4, 1e-2)
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical(tune.uniform(1e-4, 1e-2))
    assert canonical(tune.choice([8, 16])) != canonical(tune.choice([8, 32]))
    assert "0x" not in json.dumps(canonical(tune.qloguniform(1e-4, 1e-2, 1e-5)))


def test_random_search_names_agree_between_processes():
    outputs = [subprocess.run([sys.executable, "-m", "quokka_ray.cli", "plan",
                               "experiments/optuna_lr.py", "--json"], cwd=REPO, check=True,
                              capture_output=True, text=True, timeout=180).stdout
               for _ in range(2)]
    first, second = ([row["name"] for row in json.loads(out)["trials"]] for out in outputs)
    assert first == second and first


def test_changed_settings_name_what_changed():
    experiment = load_experiment(BASE)
    old = {t.name: t.settings for t in plan_trials(experiment)}
    new = {t.name: t.settings for t in plan_trials(dataclasses.replace(experiment, seed=3))}
    assert changed_settings(old, new) == ["seed: 0 -> 3"]
    assert changed_settings(old, old) == []
