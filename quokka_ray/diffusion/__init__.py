"""Noise schedules, corruption kernels, timestep sampling, objectives, validation, samplers.

Knows nothing of Ray or MLflow, nor of quokka_ray outside this package: models are plain
nn.Modules called as model(tokens) or model(tokens, t).
"""

from .config import ObjectiveConfig
from .noise import Noise, corrupt, draw_noise
from .objectives import LossOutput, per_sequence_loss, token_cross_entropy
from .sampling import sample_ar, sample_categorical, sample_dlm
from .schedules import DEFAULT_T_MIN, CosineSchedule, PolynomialSchedule, Schedule, get_schedule
from .timesteps import sample_timesteps, stratified_uniform, truncated_normal
from .validation import sequence_noise, validation_loss

__all__ = [
    "DEFAULT_T_MIN",
    "CosineSchedule",
    "LossOutput",
    "Noise",
    "ObjectiveConfig",
    "PolynomialSchedule",
    "Schedule",
    "corrupt",
    "draw_noise",
    "get_schedule",
    "per_sequence_loss",
    "sample_ar",
    "sample_categorical",
    "sample_dlm",
    "sample_timesteps",
    "sequence_noise",
    "stratified_uniform",
    "token_cross_entropy",
    "truncated_normal",
    "validation_loss",
]
