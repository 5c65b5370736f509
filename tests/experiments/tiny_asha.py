"""Six trials of one tiny model under ASHA: one good learning rate and five that barely move,
so that the good one runs to the end and the others are stopped at the first rung."""

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
    study=FixedStudy(model_sizes=[12_000], tokens=[8 * 32 * 40]),
    hyperparameters=Hyperparameters(
        lr=tune.grid_search([1e-2, 1e-6, 2e-6, 3e-6, 4e-6, 5e-6]), batch_sequences=8,
        warmup_fraction=0.0),
    search=Search(scheduler="asha", metric="val_loss"),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1, max_concurrent_trials=2),
    evaluation=EvaluationConfig(eval_every_steps=5, validation_samples_per_sequence=2,
                                smoothing_window_steps=5),
    checkpoint_every_steps=1000,
)
