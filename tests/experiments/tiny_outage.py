"""One trial that trains for a minute or more on 2 cores (400 steps, a checkpoint every 100):
long enough for the tracking server to go away and come back while it trains."""

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
    study=FixedStudy(model_sizes=[55_000], tokens=[8 * 32 * 400]),
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
    checkpoint_every_steps=100,
)
