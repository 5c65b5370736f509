"""Two trials of one tiny model: a sane learning rate, and one so large that the loss stops
being finite after the first update (the divergence test)."""

import os

from ray import tune

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    Resources,
)

experiment = Experiment(
    study=FixedStudy(model_sizes=[12_000], tokens=[8 * 32 * 12]),
    hyperparameters=Hyperparameters(lr=tune.grid_search([3e-3, 1e30]), batch_sequences=8,
                                    warmup_fraction=0.0, grad_clip_norm=0.0),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1, max_concurrent_trials=2, max_failures=2),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
    checkpoint_every_steps=1000,
)
