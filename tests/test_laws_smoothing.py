"""The smoothed final training loss (Gaussian window over steps, evaluated at the end)."""

from __future__ import annotations

import numpy as np
import pytest

from quokka_ray.laws import smooth_final_loss


def test_noise_is_averaged_out_at_the_end():
    rng = np.random.default_rng(0)
    losses = 3.0 + rng.normal(0, 0.05, 5000)
    smoothed = smooth_final_loss(losses)
    # ~150 steps with effective weight: the error shrinks ~sqrt(75) below one step's noise
    assert abs(smoothed - 3.0) < 0.02
    assert abs(smoothed - 3.0) < abs(losses[-1] - 3.0) or abs(losses[-1] - 3.0) < 0.02


def test_only_the_window_counts():
    losses = np.r_[np.full(1000, 10.0), np.full(151, 2.0)]  # the old level ends 151 steps back
    assert smooth_final_loss(losses, window_steps=301) == pytest.approx(2.0)
    assert smooth_final_loss(losses, window_steps=401) > 2.0  # a wider window reaches it


def test_weights_are_a_half_gaussian_with_sigma_window_over_six():
    losses = np.arange(400, dtype=float)  # a linear ramp
    lag = np.arange(151)
    w = np.exp(-0.5 * (lag / (301 / 6)) ** 2)
    expected = 399 - np.sum(w * lag) / np.sum(w)
    assert smooth_final_loss(losses) == pytest.approx(expected)


def test_sparse_logging_uses_steps_not_points():
    steps = np.arange(0, 5000, 10)
    dense = 2.0 + np.exp(-np.arange(5000) / 800.0)
    assert smooth_final_loss(dense[steps], steps=steps) == pytest.approx(
        smooth_final_loss(dense), rel=1e-4
    )


def test_short_series_and_missing_values():
    assert smooth_final_loss([4.0]) == 4.0
    assert smooth_final_loss([4.0, 3.0, np.nan]) == pytest.approx(
        (4.0 * np.exp(-0.5 * (1 / 50.1666) ** 2) + 3.0) / (np.exp(-0.5 * (1 / 50.1666) ** 2) + 1),
        rel=1e-6,
    )
    with pytest.raises(ValueError):
        smooth_final_loss([np.nan])
