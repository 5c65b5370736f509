"""Data-constrained scaling (Quokka section 5; Muennighoff et al. 2023): how much repeated data
is worth. For each budget U of unique tokens and each model size N, runs repeat the U tokens
for 1, 2, 4 and 8 epochs. The runs of one (U, N) form a warmup-stable-decay ladder: its stable
phase is trained once and each run's decay branches from it, so the four runs cost about the
8-epoch run plus three short decays (`quokka plan` shows the saving). `quokka fit` fits
Quokka's eq. 14 and Muennighoff's effective-data law on the runs' final validation losses.

Sized for 2 CPU cores (two budgets, two sizes: 16 runs in 4 ladders); at this scale the fitted
coefficients illustrate the method, not the science.

    quokka plan experiments/data_constrained.py
    quokka run experiments/data_constrained.py
    quokka fit experiments/data_constrained.py
"""

from quokka_ray.sweep import (
    DataConfig,
    DataConstrainedStudy,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    ObjectiveConfig,
    Resources,
)

experiment = Experiment(
    study=DataConstrainedStudy(
        unique_tokens=[20_480, 81_920],  # 80 and 320 steps of 8 x 32 tokens per epoch
        model_sizes=[3_000, 12_700],
        epochs=[1, 2, 4, 8],
    ),
    objectives=[ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")],
    hyperparameters=Hyperparameters(lr=1e-2, batch_sequences=8, lr_schedule="wsd",
                                    warmup_fraction=0.05, decay_fraction=0.2),
    data=DataConfig(seq_len=32, max_corpus_bytes=1_000_000, validation_sequences=64),
    resources=Resources(workers_per_trial=1, cpus_per_worker=1),
    # Checkpoints where the decays branch (always kept) and at the end.
    checkpoint_every_steps=100_000,
    evaluation=EvaluationConfig(smoothing_window_steps=51),
)
