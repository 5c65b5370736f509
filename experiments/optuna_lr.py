"""Optuna (TPE) searches the peak learning rate and weight decay of one masked DLM; ASHA stops
the hopeless trials early (the law fits then keep only trials that ran to the end). Two
scales, chosen with `--set scale=...`:

- `tiny` (the default): 12 samples of a 55k-parameter model, for 2 CPU cores.
- `paper`: 24 samples around the paper's peak LR of 2e-4 (a log-uniform range of 5e-5 to
  1e-3) for a 127M masked DLM on 1.3e10 tokens (C of about 1e19 FLOPs, near its
  compute-optimal size by Quokka's approach 1) with the paper's recipe: FineWeb-Edu, GPT-2
  tokenizer, sequences of 2048 tokens, batches of 256.

    quokka run  experiments/optuna_lr.py
    quokka plan experiments/optuna_lr.py --set scale=paper --gpu h100 --mfu 0.4

Each scale is its own MLflow and Tune experiment (optuna_lr-tiny, -paper).
"""

from typing import Literal

from ray import tune

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    ObjectiveConfig,
    Resources,
    Search,
)


def make_experiment(scale: Literal["tiny", "paper"] = "tiny") -> Experiment:
    name = f"optuna_lr-{scale}"
    if scale == "tiny":
        return Experiment(
            name=name,
            study=FixedStudy(model_sizes=[55_000], tokens=[300_000]),
            objectives=[ObjectiveConfig(kind="dlm")],
            hyperparameters=Hyperparameters(lr=tune.loguniform(3e-4, 3e-2),
                                            weight_decay=tune.uniform(0.0, 0.3),
                                            batch_sequences=16),
            search=Search(algorithm="optuna", num_samples=12, scheduler="asha"),
            data=DataConfig(seq_len=64),
            resources=Resources(workers_per_trial=1),
            evaluation=EvaluationConfig(eval_every_steps=50, smoothing_window_steps=51),
        )
    return Experiment(
        name=name,
        study=FixedStudy(model_sizes=[127_000_000], tokens=[13_000_000_000]),
        objectives=[ObjectiveConfig(kind="dlm")],
        hyperparameters=Hyperparameters(lr=tune.loguniform(5e-5, 1e-3),
                                        weight_decay=tune.uniform(0.0, 0.3),
                                        batch_sequences=256, lr_schedule="cosine"),
        search=Search(algorithm="optuna", num_samples=24, scheduler="asha"),
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=100_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        # ASHA's rungs: 500-step evaluations of runs of about 24,800 steps.
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
