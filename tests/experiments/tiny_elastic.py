"""One trial for the elastic test: checkpoints often, and trains long enough (600 steps, about
20 s after its first checkpoint on 2 busy cores) for Train's controller to see a node that
joins after that checkpoint and grow from 1 to 2 workers; at 240 steps the run could end first."""

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
    study=FixedStudy(model_sizes=[55_000], tokens=[8 * 32 * 600]),
    # A gentle learning rate: 1 and 2 workers round differently, and a steep one amplifies it.
    hyperparameters=Hyperparameters(lr=1e-3, batch_sequences=8),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=(1, 2)),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
    checkpoint_every_steps=10,
)
