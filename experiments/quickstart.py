"""Quickstart: an IsoFLOP study of masked diffusion LMs, sized for a laptop (2 CPU cores).

Four compute budgets, each 1.8 times the last (1e11 to 6e11 FLOPs), x four model sizes, each
trained on the Python standard library's source (offline, byte-level tokens). At these widths
the embedding, attention and output layer cost 1.5 to 3 times the 6N FLOPs per token of the
law, so the budgets count exact training FLOPs (`budget_flops_rule="exact"`): each size trains
on D = C / F(N) tokens, F its own FLOPs per token, and every run of a budget spends the same
compute. The sizes are the one-layer models of width 16 to 64 (3k to 49k non-embedding
parameters): one family of shapes, whose losses differ by size alone, not by depth too. Each
budget trains every size its window of 4 to 2,500 tokens per parameter admits: all four, but
the smallest model at 6e11 FLOPs (11M tokens, 3,630 per parameter). Each budget's optimum
(from about 5k parameters at 1e11 to about 15k at 6e11) lies among its sizes. The first 8 MB
of the standard library hold the longest run's 6M tokens once. `quokka plan` shows every run's epochs: none sees a token twice.

The laws fit the validation loss (`fit_target="val_loss"`): 512 held-out sequences, the same
Monte-Carlo noise for every run (`EvaluationConfig.seed`). Here it varies less from one
training seed to the next than the smoothed training loss, whose last batches (a few hundred
thousand tokens of a few source files) differ from seed to seed.

At this toy scale the runs are short and a budget's curve rests on three or four runs: the
fitted exponents illustrate the method, not the science, and the report's intervals say how
far they can be trusted.

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
        budgets_flops=[1e11, 1.8e11, 3.3e11, 6e11],
        # The shape rule gives 1x16, 1x32, 1x48 and 1x64 (layers x width).
        model_sizes=[3_000, 12_700, 27_800, 48_900],
        budget_flops_rule="exact",
        tokens_per_param=(4, 2_500),
        min_steps=100,
    ),
    objectives=[ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")],
    hyperparameters=Hyperparameters(lr=1e-2, weight_decay=0.1, batch_sequences=32),
    data=DataConfig(seq_len=64, max_corpus_bytes=8_000_000, validation_sequences=512),
    resources=Resources(workers_per_trial=1, cpus_per_worker=1, micro_batch_sequences=32),
    # One checkpoint at the end: at this scale a resume costs less than frequent saves.
    checkpoint_every_steps=20_000,
    evaluation=EvaluationConfig(smoothing_window_steps=201),
    fit_target="val_loss",
)
