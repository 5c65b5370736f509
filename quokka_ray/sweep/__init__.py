"""Experiment specification, trial grids and the Ray Tune driver."""

from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep.grid import TrialSpec, plan_trials
from quokka_ray.sweep.loader import load_experiment
from quokka_ray.sweep.spec import (
    Experiment,
    FixedStudy,
    Hyperparameters,
    IsoFlopStudy,
    Resources,
    Search,
)
from quokka_ray.sweep.validation import ExperimentError

__all__ = [
    "DataConfig",
    "Experiment",
    "ExperimentError",
    "FixedStudy",
    "Hyperparameters",
    "IsoFlopStudy",
    "ObjectiveConfig",
    "Resources",
    "Search",
    "TrialSpec",
    "load_experiment",
    "plan_trials",
]
