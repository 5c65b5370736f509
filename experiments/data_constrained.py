"""Data-constrained scaling (Quokka section 5; Muennighoff et al. 2023): how much repeated data
is worth. For each budget U of unique tokens and each model size N, runs repeat the U tokens
for 1, 2, 4 and 8 epochs. The runs of one (U, N) form a warmup-stable-decay ladder: its stable
phase is trained once and each run's decay branches from it, so the four runs cost about the
8-epoch run plus three short decays (`quokka plan` shows the saving). `quokka fit` fits
Quokka's eq. 14 and Muennighoff's effective-data law on the runs' final validation losses.

Two scales, chosen with `--set scale=...`:

- `tiny` (the default), sized for 2 CPU cores (two unique-token budgets, two sizes, 1, 2 and 4 epochs: 12 runs in 4
  ladders);
  at this scale the fitted coefficients illustrate the method, not the science.
- `paper`: the unique-token budgets of Quokka's Figure 4 (10M to 139M), five of its model sizes
  (14M to 2.79B) and 1 to 256 epochs, on FineWeb-Edu with the GPT-2 tokenizer, sequences of
  2048 tokens, batches of 256 and peak LR 2e-4: 270 runs in 30 ladders. The paper goes to
  1000 epochs; at 256 its curves are already past their optimum, and each doubling of the
  top epoch count doubles every ladder's stable phase.

    quokka plan experiments/data_constrained.py
    quokka run experiments/data_constrained.py
    quokka fit experiments/data_constrained.py
    quokka plan experiments/data_constrained.py --set scale=paper --gpu h100 --mfu 0.4

Each scale is its own MLflow and Tune experiment (data_constrained-tiny, -paper).
"""

from typing import Literal

from quokka_ray.sweep import (
    DataConfig,
    DataConstrainedStudy,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    ObjectiveConfig,
    Resources,
)


def make_experiment(scale: Literal["tiny", "paper"] = "tiny") -> Experiment:
    name = f"data_constrained-{scale}"
    objective = ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")
    if scale == "tiny":
        return Experiment(
            name=name,
            study=DataConstrainedStudy(
                unique_tokens=[10_240, 20_480],  # 40 and 80 steps of 8 x 32 tokens per epoch
                model_sizes=[3_000, 12_700],
                epochs=[1, 2, 4],
            ),
            objectives=[objective],
            hyperparameters=Hyperparameters(lr=1e-2, batch_sequences=8, lr_schedule="wsd",
                                            warmup_fraction=0.05, decay_fraction=0.2),
            data=DataConfig(seq_len=32, max_corpus_bytes=1_000_000, validation_sequences=64),
            resources=Resources(workers_per_trial=1, cpus_per_worker=1),
            # Checkpoints where the decays branch (always kept) and at the end.
            checkpoint_every_steps=100_000,
            evaluation=EvaluationConfig(smoothing_window_steps=51),
        )
    return Experiment(
        name=name,
        study=DataConstrainedStudy(
            # U = 10M is 19 steps of 256 x 2048 tokens per epoch, so its 1-epoch run still
            # decays after its warmup.
            unique_tokens=[10_000_000, 17_000_000, 29_000_000, 49_000_000, 82_000_000,
                           139_000_000],
            model_sizes=[14_000_000, 65_000_000, 301_000_000, 1_360_000_000, 2_790_000_000],
            epochs=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        ),
        objectives=[objective],
        hyperparameters=Hyperparameters(lr=2e-4, weight_decay=0.1, batch_sequences=256,
                                        lr_schedule="wsd", warmup_fraction=0.05,
                                        decay_fraction=0.2),
        # The largest U with its validation documents: about 1 GB of text.
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=2_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
