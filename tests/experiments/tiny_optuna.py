"""Optuna samples the learning rate of one tiny trial point twice (the Optuna path test)."""

import os

from ray import tune

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    Resources,
    Search,
)

experiment = Experiment(
    study=FixedStudy(model_sizes=[12_000], tokens=[8 * 32 * 10]),
    hyperparameters=Hyperparameters(lr=tune.loguniform(1e-3, 1e-2), batch_sequences=8),
    search=Search(algorithm="optuna", num_samples=2),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1, max_concurrent_trials=2),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
)
