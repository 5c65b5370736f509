"""A tiny data-constrained study: one unique-token budget, two model sizes, three epoch counts
(two warmup-stable-decay ladders of three runs each)."""

import os

from quokka_ray.sweep import (
    DataConfig,
    DataConstrainedStudy,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    Resources,
)

experiment = Experiment(
    study=DataConstrainedStudy(unique_tokens=[8 * 32 * 10], model_sizes=[3_000, 12_000],
                               epochs=[1, 2, 4]),
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8, lr_schedule="wsd",
                                    warmup_fraction=0.1, decay_fraction=0.2),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
    checkpoint_every_steps=1000,
)
