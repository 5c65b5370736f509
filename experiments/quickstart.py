"""Quickstart: an IsoFLOP study of masked diffusion LMs, sized for a laptop (2 CPU cores).

Three compute budgets x four model sizes; each model trains on D = C / (6 N) tokens of the
Python standard library's source (offline, byte-level tokens). At this toy scale attention
and the output layer add tens of percent to 6N FLOPs per token, so the fitted exponents
illustrate the method, not the science.

    quokka plan experiments/quickstart.py
    quokka run experiments/quickstart.py
    quokka fit experiments/quickstart.py
"""

from quokka_ray.sweep import (
    DataConfig,
    Experiment,
    Hyperparameters,
    IsoFlopStudy,
    ObjectiveConfig,
    Resources,
)

experiment = Experiment(
    study=IsoFlopStudy(
        budgets_flops=[2e10, 6e10, 2e11],
        model_sizes=[12_000, 55_000, 100_000, 330_000],
        min_steps=10,
    ),
    objectives=[ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")],
    hyperparameters=Hyperparameters(lr=3e-3, weight_decay=0.1, batch_sequences=16),
    data=DataConfig(seq_len=64, max_corpus_bytes=2_000_000, validation_sequences=64),
    resources=Resources(workers_per_trial=1, cpus_per_worker=1),
    checkpoint_every_steps=100,
    smoothing_window_steps=21,
)
