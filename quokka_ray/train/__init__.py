"""Training: the worker loop (FSDP2), optimizer and LR schedule, checkpoints, throughput.
Reports through the `Tracker` interface; knows nothing of MLflow."""

from quokka_ray.train.config import OptimizerConfig, TrainConfig

__all__ = ["OptimizerConfig", "TrainConfig"]
