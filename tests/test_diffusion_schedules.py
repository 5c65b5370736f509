"""Schedules: boundary values, monotonicity, derivatives, ELBO weights; ObjectiveConfig checks."""

import math

import pytest
import torch

from quokka_ray.diffusion import DEFAULT_T_MIN, ObjectiveConfig, get_schedule

NAMES = ["linear", "poly2", "poly3", "cosine"]


@pytest.mark.parametrize("name", NAMES)
def test_boundaries_and_monotone(name: str) -> None:
    schedule = get_schedule(name)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    alpha = schedule.alpha(t)
    assert alpha[0].item() == pytest.approx(1.0, abs=1e-12)
    assert alpha[-1].item() == pytest.approx(0.0, abs=1e-12)
    assert (alpha[1:] < alpha[:-1]).all()  # strictly decreasing


@pytest.mark.parametrize("name", NAMES)
def test_alpha_prime_matches_finite_differences(name: str) -> None:
    schedule = get_schedule(name)
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    h = 1e-6
    numeric = (schedule.alpha(t + h) - schedule.alpha(t - h)) / (2 * h)
    assert torch.allclose(schedule.alpha_prime(t), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_weight_is_minus_alpha_prime_over_one_minus_alpha(name: str) -> None:
    schedule = get_schedule(name)
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    expected = -schedule.alpha_prime(t) / (1 - schedule.alpha(t))
    assert torch.allclose(schedule.weight(t), expected, rtol=1e-7)
    # The weights of the masked ELBO spread one unit of mass: int_0^1 w (1 - alpha) dt = 1.
    grid = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    integrand = -schedule.alpha_prime(grid)
    assert torch.trapezoid(integrand, grid).item() == pytest.approx(1.0, abs=1e-6)


def test_linear_weight_is_one_over_t() -> None:
    t = torch.tensor([0.001, 0.1, 0.5, 1.0])
    assert torch.allclose(get_schedule("linear").weight(t), 1 / t)
    assert torch.allclose(get_schedule("poly2").alpha(t), 1 - t**2)
    cosine = get_schedule("cosine").alpha(t)
    assert torch.allclose(cosine, 1 - torch.cos(math.pi / 2 * (1 - t)))


@pytest.mark.parametrize("name", ["quadratic", "poly0", "poly", "poly-2", "Linear"])
def test_unknown_schedule_lists_valid_names(name: str) -> None:
    with pytest.raises(ValueError, match="linear.*poly.*cosine"):
        get_schedule(name)


def test_default_t_min() -> None:
    assert DEFAULT_T_MIN == 1e-3
    assert ObjectiveConfig().t_min == DEFAULT_T_MIN


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "mdlm"}, "kind.*'dlm', 'ar'"),
        ({"kernel": "absorbing"}, "kernel.*'masked', 'uniform'"),
        ({"loss": "nll"}, "loss.*'elbo', 'maskgit', 'elbo_realized_masked'"),
        ({"timesteps": "stratified"}, "timesteps.*'uniform', 'antithetic', 'curriculum'"),
        ({"schedule": "geometric"}, "schedule.*linear"),
        ({"t_min": 0.0}, "t_min"),
        ({"t_min": 1.0}, "t_min"),
        ({"curriculum_width": 0.0}, "curriculum_width"),
    ],
)
def test_objective_config_errors_name_field_and_valid_values(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ObjectiveConfig(**change)


def test_needs_time_embedding() -> None:
    assert ObjectiveConfig(kernel="uniform").needs_time_embedding
    assert not ObjectiveConfig(kernel="masked").needs_time_embedding
    assert not ObjectiveConfig(kind="ar", kernel="uniform").needs_time_embedding
