"""Held-out checks: the parametric law fitted on smaller budgets predicts the largest one."""

from __future__ import annotations

import numpy as np
import pytest

from quokka_ray.laws import LawInputError, ParametricFit, holdout_parametric


def _isoflop_runs(law: ParametricFit, budgets, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    C = np.repeat(budgets, 7)
    N = np.concatenate([law.optimal_allocation(c)[0] * np.geomspace(0.2, 5, 7) for c in budgets])
    D = C / (6 * N)
    return N, D, law.predict(N, D) * np.exp(rng.normal(0, noise, N.size)), C


def test_parametric_holdout_predicts_the_largest_budget():
    law = ParametricFit(E=2.4, A=800.0, B=4600.0, alpha=0.38, beta=0.38)
    N, D, loss, C = _isoflop_runs(law, np.geomspace(1e17, 1e20, 5), noise=0.002, seed=0)
    held = holdout_parametric(N, D, loss, C=C)
    print(held.describe())
    assert held.n_held_out == 7 and held.n_fit == 28
    assert "1e+20" in held.held_out
    np.testing.assert_allclose(held.observed, loss[C == 1e20])
    # 0.2% noise, extrapolating 3x in compute: the prediction stays within ~1%
    assert held.metrics["rmse_log_loss"] < 0.01
    assert held.metrics["max_abs_relative_error"] < 0.02
    # the metric is what it says
    assert held.metrics["rmse_log_loss"] == pytest.approx(
        np.sqrt(np.mean(np.log(held.predicted / held.observed) ** 2))
    )


def test_parametric_holdout_needs_runs_below_the_largest_budget():
    law = ParametricFit(E=2.4, A=800.0, B=4600.0, alpha=0.38, beta=0.38)
    N, D, loss, C = _isoflop_runs(law, np.array([1e17, 1e18]), noise=0.0, seed=0)
    keep = np.r_[0:3, 7:14]  # 3 runs at the small budget, 7 at the large one
    with pytest.raises(LawInputError, match="only 3 runs below the largest budget"):
        holdout_parametric(N[keep], D[keep], loss[keep], C=C[keep])
