"""Does weight decay matter for DLMs, with fresh data and with repeated data? The paper's
comparison of weight decay on (0.1) and off (0) at one epoch and at 96 epochs over the same
unique tokens. A data-constrained study: the runs of one (U, N, weight decay) form a
warmup-stable-decay ladder, so the many-epoch run and the one-epoch run share their stable
phase, and weight decay, a grid value, gives each setting its own ladder. Two scales, chosen
with `--set scale=...`:

- `tiny` (the default): one 12.7k-parameter model on 10,240 unique byte tokens of the Python
  standard library's source, 1 and 16 epochs, weight decay 0.1 and 0: 4 runs in 2 ladders for
  2 CPU cores.
- `paper`: 1 and 96 epochs of 139M unique tokens (the largest budget of Quokka's Figure 4)
  for a 417M model (the smallest the paper trains on that budget), on FineWeb-Edu with the
  GPT-2 tokenizer, sequences of 2048 tokens, batches of 256 and peak LR 2e-4.

    quokka run  experiments/weight_decay.py
    quokka fit  experiments/weight_decay.py
    quokka plan experiments/weight_decay.py --set scale=paper --gpu h100 --mfu 0.4

Each scale is its own MLflow and Tune experiment (weight_decay-tiny, -paper).
"""

from typing import Literal

from ray import tune

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
    name = f"weight_decay-{scale}"
    objective = ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")
    if scale == "tiny":
        return Experiment(
            name=name,
            # 40 steps of 8 x 32 tokens per epoch.
            study=DataConstrainedStudy(unique_tokens=[10_240], model_sizes=[12_700],
                                       epochs=[1, 16]),
            objectives=[objective],
            hyperparameters=Hyperparameters(lr=1e-2, weight_decay=tune.grid_search([0.1, 0.0]),
                                            batch_sequences=8, lr_schedule="wsd",
                                            warmup_fraction=0.05, decay_fraction=0.2),
            data=DataConfig(seq_len=32, max_corpus_bytes=1_000_000, validation_sequences=64),
            resources=Resources(workers_per_trial=1, cpus_per_worker=1),
            # Checkpoints where the decays branch (always kept) and at the end.
            checkpoint_every_steps=100_000,
            evaluation=EvaluationConfig(smoothing_window_steps=51),
        )
    return Experiment(
        name=name,
        study=DataConstrainedStudy(unique_tokens=[139_000_000], model_sizes=[417_000_000],
                                   epochs=[1, 96]),
        objectives=[objective],
        hyperparameters=Hyperparameters(lr=2e-4, weight_decay=tune.grid_search([0.1, 0.0]),
                                        batch_sequences=256, lr_schedule="wsd",
                                        warmup_fraction=0.05, decay_fraction=0.2),
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=2_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
