"""The tiny IsoFLOP study with cooldown reuse: each model size one warmup-stable-decay ladder."""

import os

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    IsoFlopStudy,
    ObjectiveConfig,
    Resources,
)

experiment = Experiment(
    study=IsoFlopStudy(budgets_flops=[2e9, 6e9], model_sizes=[12_000, 55_000, 100_000],
                       min_steps=3, reuse_stable_phase=True, budget_tolerance=0.05),
    objectives=[ObjectiveConfig(kind="dlm")],
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8, lr_schedule="wsd"),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1, max_concurrent_trials=2),
    checkpoint_every_steps=1000,
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
)
