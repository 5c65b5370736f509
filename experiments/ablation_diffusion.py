"""The modelling choices Quokka ablates, at one model size and token count: noise schedules
(linear, poly2, cosine), the uniform kernel (a surrogate loss with a time embedding), MaskGIT
weighting, the clean-to-noisy curriculum and antithetic timesteps, against an AR baseline.
Validation always uses the fixed uniform-t ELBO estimate, so the runs compare directly.

    quokka run experiments/ablation_diffusion.py      # ~8 trials of a 100k-parameter model
    mlflow ui --backend-store-uri sqlite:///mlflow.db  # compare val_loss across runs
"""

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    ObjectiveConfig,
    Resources,
)

experiment = Experiment(
    study=FixedStudy(model_sizes=[100_000], tokens=[400_000]),
    objectives=[
        ObjectiveConfig(kind="dlm", schedule="linear"),
        ObjectiveConfig(kind="dlm", schedule="poly2"),
        ObjectiveConfig(kind="dlm", schedule="cosine"),
        ObjectiveConfig(kind="dlm", kernel="uniform"),
        ObjectiveConfig(kind="dlm", loss="maskgit"),
        ObjectiveConfig(kind="dlm", timesteps="curriculum", curriculum_width=0.2),
        ObjectiveConfig(kind="dlm", timesteps="antithetic"),
        ObjectiveConfig(kind="ar"),
    ],
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=16),
    data=DataConfig(seq_len=64),
    resources=Resources(workers_per_trial=1),
    evaluation=EvaluationConfig(smoothing_window_steps=51),
)
