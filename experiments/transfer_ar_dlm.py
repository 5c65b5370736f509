"""Do AR optima transfer to DLMs? The paper's grid (peak LR x batch size) for AR and masked DLM
models on two budgets; `quokka fit` then fits lr_opt(C) and B_opt(C) for each kind and reports
how much loss the AR optimum costs a DLM. Sized for a laptop: 2 kinds x 2 budgets x 2 sizes x
3 LRs x 2 batches = 48 short trials.
"""

from ray import tune

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
    study=IsoFlopStudy(budgets_flops=[3e10, 1e11], model_sizes=[12_000, 55_000], min_steps=10),
    objectives=[ObjectiveConfig(kind="dlm"), ObjectiveConfig(kind="ar")],
    hyperparameters=Hyperparameters(lr=tune.grid_search([1e-3, 3e-3, 1e-2]),
                                    batch_sequences=tune.grid_search([8, 32])),
    data=DataConfig(seq_len=64),
    resources=Resources(workers_per_trial=1),
    evaluation=EvaluationConfig(smoothing_window_steps=21),
)
