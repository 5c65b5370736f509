"""The smoothed final training loss reaches back no more than a stated fraction of a run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from quokka_ray.data import prepare_shards
from quokka_ray.train.config import EvaluationConfig
from quokka_ray.train.loop import train
from quokka_ray.train.smoothing import smooth_final_loss
from tests.scripts.train_ranks import tiny_config


class StepLosses:
    """A Tracker that keeps the training loss of every step."""

    def __init__(self):
        self.train_loss: dict[int, float] = {}

    def log_metrics(self, metrics, step):
        if "train_loss" in metrics and "final_loss" not in metrics:
            self.train_loss[step] = metrics["train_loss"]

    def log_artifact(self, path):
        pass

    def flush(self):
        pass


def test_weights_are_a_half_gaussian_over_the_lookback():
    losses = np.arange(400, dtype=float)  # a linear ramp
    lag = np.arange(151)
    weights = np.exp(-0.5 * (lag / 50.0) ** 2)
    assert smooth_final_loss(losses, 150) == pytest.approx(399 - np.sum(weights * lag) / np.sum(weights))
    assert smooth_final_loss(losses, 0) == 399.0
    assert smooth_final_loss([4.0, np.nan], 3) == 4.0
    with pytest.raises(ValueError):
        smooth_final_loss([np.nan], 3)


def test_noise_is_averaged_out_at_the_end():
    losses = 3.0 + np.random.default_rng(0).normal(0, 0.05, 5000)
    assert abs(smooth_final_loss(losses, 150) - 3.0) < 0.02


def test_lookback_is_capped_by_the_fraction_of_steps():
    evaluation = EvaluationConfig(smoothing_window_steps=301, smoothing_max_fraction=0.1)
    assert evaluation.smoothing_lookback_steps(40) == 4
    assert evaluation.smoothing_lookback_steps(100_000) == 150  # Quokka's 301-step window


def test_a_40_step_run_smooths_over_its_last_tenth_only(data_cache, one_torch_thread):
    cfg = replace(tiny_config(str(data_cache), steps=40),
                  evaluation=EvaluationConfig(smoothing_window_steps=301,
                                              smoothing_max_fraction=0.1,
                                              validation_samples_per_sequence=1))
    steps = StepLosses()
    prepare_shards(cfg.data)
    final = train(cfg, rank=0, world_size=1, device=torch.device("cpu"),
                  report=lambda metrics, folder: None, tracker=steps)
    history = np.array([steps.train_loss[s] for s in range(1, 41)])
    assert cfg.smoothing_lookback_steps == 4
    assert final["final_loss"] == pytest.approx(smooth_final_loss(history, 4), rel=1e-12)
    # Only the last 5 steps (the last one and 4 before it) count: the rest can be anything.
    changed = history.copy()
    changed[:-5] = 1e3
    assert smooth_final_loss(changed, 4) == pytest.approx(final["final_loss"], rel=1e-12)
    changed[-5] += 1.0
    assert smooth_final_loss(changed, 4) != pytest.approx(final["final_loss"], rel=1e-6)
    # An uncapped 301-step window would have averaged in the start of training.
    assert smooth_final_loss(history, 150) > final["final_loss"] + 0.1
