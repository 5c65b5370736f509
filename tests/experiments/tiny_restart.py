"""Three trials of one tiny model, two at a time: a short one that finishes while a long one
runs and a third waits (the driver restart test kills the driver then)."""

import os

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    Resources,
)

experiment = Experiment(
    study=FixedStudy(model_sizes=[12_000, 12_000, 12_000],
                     tokens=[8 * 32 * 20, 8 * 32 * 200, 8 * 32 * 40]),
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1, max_concurrent_trials=2),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
    checkpoint_every_steps=10,
)
