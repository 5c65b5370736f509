"""Quickstart: an IsoFLOP study of masked diffusion LMs, sized for a laptop (2 CPU cores).

Three compute budgets x four model sizes; each model trains on D = C / (6 N) tokens of the
Python standard library's source (offline, byte-level tokens). The first 12 MB of it hold
11.4M training tokens, enough for the longest trial (11.0M tokens) to see each token once:
`quokka plan` shows every trial's epochs. At these sizes the smallest
model stops improving after a few thousand steps while the larger ones are still limited by
their step count, which puts each budget's optimum inside the sampled sizes.

At this toy scale attention and the output layer add tens of percent to 6N FLOPs per token,
and a budget's curve rests on four short, noisy runs: the fitted exponents illustrate the
method, not the science.

    quokka plan experiments/quickstart.py
    quokka run experiments/quickstart.py
    quokka fit experiments/quickstart.py
"""

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
    study=IsoFlopStudy(
        budgets_flops=[5e10, 1e11, 2e11],
        # The shape rule gives 1x16, 1x32, 2x48 and 2x64 (layers x width).
        model_sizes=[3_000, 12_700, 55_600, 97_700],
        min_steps=20,
    ),
    objectives=[ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")],
    hyperparameters=Hyperparameters(lr=1e-2, weight_decay=0.1, batch_sequences=32),
    data=DataConfig(seq_len=64, max_corpus_bytes=12_000_000, validation_sequences=64),
    resources=Resources(workers_per_trial=1, cpus_per_worker=1, micro_batch_sequences=32),
    # One checkpoint at the end: at this scale a resume costs less than frequent saves.
    checkpoint_every_steps=5000,
    evaluation=EvaluationConfig(smoothing_window_steps=201),
)
