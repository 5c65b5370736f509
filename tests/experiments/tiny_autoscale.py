"""Four small trials, each taking one whole worker node of the autoscaling test's cluster (a
node of one CPU that stands in for a one-GPU node): the cluster starts with no worker node,
so every trial waits for the autoscaler."""

import os

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    Resources,
)

STEPS = [10, 12, 14, 16]

experiment = Experiment(
    study=FixedStudy(model_sizes=[12_000] * len(STEPS), tokens=[8 * 32 * s for s in STEPS]),
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    # One worker of one CPU per trial fills a node of the test's worker type. Without
    # max_concurrent_trials quokka-ray would size concurrency by the CPUs the cluster has when
    # the sweep starts, which is none.
    resources=Resources(workers_per_trial=1, cpus_per_worker=1, max_concurrent_trials=len(STEPS)),
    evaluation=EvaluationConfig(smoothing_window_steps=5, validation_samples_per_sequence=2),
)
