"""Timestep sampling and noise drawing: ranges, curriculum, stratification, purity."""

import pytest
import torch

from quokka_ray.diffusion import ObjectiveConfig, draw_noise, sample_timesteps


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("timesteps", ["uniform", "antithetic", "curriculum"])
def test_timesteps_lie_in_t_min_to_one(timesteps: str) -> None:
    cfg = ObjectiveConfig(timesteps=timesteps, t_min=0.05)
    for progress in (0.0, 0.5, 1.0):
        t = sample_timesteps(cfg, 4096, _gen(0), progress)
        assert t.shape == (4096,) and t.dtype == torch.float32
        assert t.min() >= 0.05 and t.max() <= 1.0


def test_uniform_and_antithetic_are_uniform_on_t_min_to_one() -> None:
    for timesteps in ("uniform", "antithetic"):
        t = sample_timesteps(ObjectiveConfig(timesteps=timesteps), 20_000, _gen(1), 0.0)
        assert t.mean().item() == pytest.approx(0.5005, abs=0.01)
        histogram = torch.histc(t, bins=10, min=0.0, max=1.0) / t.numel()
        assert torch.allclose(histogram, torch.full((10,), 0.1), atol=0.01)


def test_antithetic_puts_one_timestep_in_each_stratum() -> None:
    cfg = ObjectiveConfig(timesteps="antithetic", t_min=0.0 + 1e-3)
    t = sample_timesteps(cfg, 64, _gen(2), 0.0)
    strata = ((t - cfg.t_min) / (1 - cfg.t_min) * 64).floor().long()
    assert sorted(strata.tolist()) == list(range(64))
    assert not torch.equal(t, t.sort().values)  # shuffled: any slice spans [t_min, 1]


def test_antithetic_lowers_the_variance_of_the_batch_mean_timestep() -> None:
    def variance(timesteps: str) -> float:
        cfg = ObjectiveConfig(timesteps=timesteps)
        gen = _gen(3)
        means = torch.stack([sample_timesteps(cfg, 32, gen, 0.0).mean() for _ in range(500)])
        return means.var().item()

    uniform, antithetic = variance("uniform"), variance("antithetic")
    assert uniform == pytest.approx((1 - 1e-3) ** 2 / 12 / 32, rel=0.25)
    # The stratified mean is (B - 1) / 2B + u0 / B: variance 1 / (12 B^2) against 1 / (12 B).
    assert antithetic == pytest.approx((1 - 1e-3) ** 2 / 12 / 32**2, rel=0.25)
    assert antithetic < uniform / 10


def test_curriculum_window_moves_from_clean_to_noisy() -> None:
    cfg = ObjectiveConfig(timesteps="curriculum", curriculum_width=0.2)
    means = [sample_timesteps(cfg, 20_000, _gen(4), p).mean().item() for p in (0, 0.5, 1)]
    # Half-normal truncated to [t_min, 1]: mean 0.2 sqrt(2/pi) = 0.16 from either end.
    assert means[0] == pytest.approx(0.16, abs=0.02)
    assert means[1] == pytest.approx(0.5, abs=0.02)
    assert means[2] == pytest.approx(0.84, abs=0.02)
    middle = sample_timesteps(cfg, 20_000, _gen(5), 0.5)
    # 2.5 std from either end: the truncation barely narrows the window.
    assert middle.std().item() == pytest.approx(0.2, abs=0.02)
    narrow = ObjectiveConfig(timesteps="curriculum", curriculum_width=0.05)
    assert sample_timesteps(narrow, 20_000, _gen(6), 0.0).mean().item() < 0.05


def test_progress_outside_zero_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="progress"):
        sample_timesteps(ObjectiveConfig(), 4, _gen(0), 1.5)


@pytest.mark.parametrize("kernel", ["masked", "uniform"])
def test_draw_noise_is_pure_and_sliceable(kernel: str) -> None:
    cfg = ObjectiveConfig(kernel=kernel, timesteps="antithetic")
    a = draw_noise(cfg, 8, 16, 257, _gen(7), 0.3)
    b = draw_noise(cfg, 8, 16, 257, _gen(7), 0.3)
    c = draw_noise(cfg, 8, 16, 257, _gen(8), 0.3)
    assert torch.equal(a.t, b.t) and torch.equal(a.u, b.u)
    assert torch.equal(a.replacement, b.replacement)
    assert not torch.equal(a.u, c.u)
    assert a.t.shape == (8,) and a.u.shape == (8, 16)
    # Two workers' slices of the global batch put back together are the global batch.
    halves = [a.rows(0, 4), a.rows(4, 8)]
    assert torch.equal(torch.cat([h.u for h in halves]), a.u)
    assert torch.equal(torch.cat([h.t for h in halves]), a.t)
    if kernel == "uniform":
        assert a.replacement.shape == (8, 16)
        big = draw_noise(cfg, 64, 64, 5, _gen(9), 0.0).replacement
        assert set(big.unique().tolist()) == {0, 1, 2, 3}  # V - 1 real tokens
    else:
        assert a.replacement.numel() == 0


def test_ar_noise_is_empty() -> None:
    noise = draw_noise(ObjectiveConfig(kind="ar"), 4, 16, 257, _gen(0), 0.0)
    assert noise.u.shape == (4, 0) and noise.rows(1, 3).t.shape == (2,)
