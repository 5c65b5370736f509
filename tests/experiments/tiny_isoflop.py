"""A tiny IsoFLOP sweep for the end-to-end tests: 2 budgets x 3 sizes, seconds per trial.

Sized so that each budget's profile has a vertex, which a proposal (`quokka fit --propose`)
needs: at these budgets the largest model trains 12 to 35 steps and is clearly worse, and the
smallest model the sizing rule builds (3k parameters, 1 layer x 16) is near the optimum. The
training loss of 8 sequences of 32 tokens is noisy (its ELBO weight 1/t is unbounded), so t
starts at 0.05 and final_loss averages the last half of each run: with a 3-step average the
profiles' curvature was noise."""

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
    study=IsoFlopStudy(budgets_flops=[1e9, 3e9], model_sizes=[3_000, 12_000, 55_000],
                       min_steps=3, budget_tolerance=0.05),
    objectives=[ObjectiveConfig(kind="dlm", t_min=0.05)],
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                    cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
    resources=Resources(workers_per_trial=1, max_concurrent_trials=2),
    checkpoint_every_steps=1000,
    evaluation=EvaluationConfig(smoothing_max_fraction=0.5, validation_samples_per_sequence=2),
)
