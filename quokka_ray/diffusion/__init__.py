"""Noise schedules, corruption kernels, timestep sampling, objectives, validation, samplers.

Knows nothing of Ray or MLflow, nor of quokka_ray outside this package: models are plain
nn.Modules called as model(tokens) or model(tokens, t).
"""

from importlib import import_module

from .config import DEFAULT_T_MIN, ObjectiveConfig

# The package imports only its configs and plain arithmetic with itself: a config unpickled
# by Ray Train's controller or Tune's driver must not import torch or pyarrow (seconds in
# every such process). Everything else is imported on first use.
_LAZY = {
    "Noise": ".noise",
    "corrupt": ".noise",
    "draw_noise": ".noise",
    "to_device": ".noise",
    "LossOutput": ".objectives",
    "per_sequence_loss": ".objectives",
    "token_cross_entropy": ".objectives",
    "sample_ar": ".sampling",
    "sample_categorical": ".sampling",
    "sample_dlm": ".sampling",
    "CosineSchedule": ".schedules",
    "PolynomialSchedule": ".schedules",
    "Schedule": ".schedules",
    "get_schedule": ".schedules",
    "sample_timesteps": ".timesteps",
    "stratified_uniform": ".timesteps",
    "truncated_normal": ".timesteps",
    "sequence_noise": ".validation",
    "validation_loss": ".validation",
}

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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
