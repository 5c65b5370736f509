"""Optuna (TPE) searches the peak learning rate and weight decay of one masked DLM; ASHA stops
the hopeless trials early (the law fits then keep only trials that ran to the end).

    quokka run experiments/optuna_lr.py
"""

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

experiment = Experiment(
    study=FixedStudy(model_sizes=[55_000], tokens=[300_000]),
    objectives=[ObjectiveConfig(kind="dlm")],
    hyperparameters=Hyperparameters(lr=tune.loguniform(3e-4, 3e-2),
                                    weight_decay=tune.uniform(0.0, 0.3), batch_sequences=16),
    search=Search(algorithm="optuna", num_samples=12, scheduler="asha"),
    data=DataConfig(seq_len=64),
    resources=Resources(workers_per_trial=1),
    evaluation=EvaluationConfig(eval_every_steps=50, smoothing_window_steps=51),
)
