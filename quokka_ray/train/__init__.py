"""Training: the worker loop (FSDP2), optimizer and LR schedule, checkpoints, throughput.
Reports through the `Tracker` interface; knows nothing of MLflow."""

from quokka_ray.train.config import (
    EvaluationConfig,
    Hyperparameters,
    PerformanceConfig,
    TrainConfig,
)

__all__ = ["EvaluationConfig", "Hyperparameters", "PerformanceConfig", "TrainConfig"]
