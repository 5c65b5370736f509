"""Experiment specification, trial grids and the Ray Tune driver."""

from quokka_ray.config import ConfigError
from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep.grid import TrialSpec, plan_trials, train_config
from quokka_ray.sweep.loader import load_experiment, load_plan
from quokka_ray.sweep.spec import (
    DataConstrainedStudy,
    Experiment,
    FixedStudy,
    GpuBudget,
    IsoFlopStudy,
    Prediction,
    Resources,
    Search,
)
from quokka_ray.train.config import EvaluationConfig, Hyperparameters, PerformanceConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataConstrainedStudy",
    "EvaluationConfig",
    "Experiment",
    "FixedStudy",
    "GpuBudget",
    "Hyperparameters",
    "IsoFlopStudy",
    "ObjectiveConfig",
    "PerformanceConfig",
    "Prediction",
    "Resources",
    "Search",
    "TrialSpec",
    "load_experiment",
    "load_plan",
    "plan_trials",
    "train_config",
]
