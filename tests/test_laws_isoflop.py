"""IsoFLOP profiles (approach 1): Quokka's N_opt = 0.0216 C^0.514 reproduced from its 87
points, recovery of a known law, and budgets without a vertex reported and left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quokka_ray.laws import (
    BudgetParabola,
    IsoFlopFit,
    LawInputError,
    ParametricFit,
    fit_budget_parabola,
    fit_isoflop,
    holdout_isoflop,
)
from quokka_ray.laws.published import reference_csv


@pytest.fixture(scope="module")
def quokka_points():
    df = pd.read_csv(reference_csv("quokka_isoflop_points.csv"))
    assert len(df) == 87
    return (
        df["C_flops"].to_numpy(float),
        df["N_params_plot"].to_numpy(float),
        df["final_train_loss_smoothed"].to_numpy(float),
    )


def test_quokka_approach1_reproduced(quokka_points):
    fit = fit_isoflop(*quokka_points)
    print(f"N_opt = {fit.k_N:.4g} C^{fit.a:.4f}, D_opt = {fit.k_D:.4g} C^{fit.b:.4f}")
    assert len(fit.budgets) == 9 and fit.skipped_budgets == []
    assert fit.a == pytest.approx(0.514, abs=0.01)
    for C in (1e19, 1e21):
        assert fit.n_opt(C) == pytest.approx(0.0216 * C**0.514, rel=0.10)
        assert fit.d_opt(C) == pytest.approx(7.7 * C**0.486, rel=0.10)
    # D_opt = C / (6 N_opt) at every budget, so the two laws are tied exactly
    assert fit.a + fit.b == pytest.approx(1.0, abs=1e-9)
    assert fit.k_N * fit.k_D == pytest.approx(1 / 6, rel=1e-9)


def test_recovers_the_allocation_of_a_known_law():
    """Losses generated from a parametric law (Quokka eq. 13) with 0.1% noise: the vertices
    follow that law's closed-form N_opt(C)."""
    law = ParametricFit(E=2.413, A=798.6, B=4604.9, alpha=0.379, beta=0.378)
    rng = np.random.default_rng(0)
    C, N = [], []
    for budget in np.geomspace(1e18, 1e21, 5):
        centre = law.optimal_allocation(budget)[0] * rng.uniform(0.7, 1.4)  # grids off-centre
        sizes = centre * np.exp(np.linspace(-1.6, 1.6, 8))
        C += [budget] * sizes.size
        N += list(sizes)
    C, N = np.array(C), np.array(N)
    loss = law.predict(N, C / (6 * N)) * np.exp(rng.normal(0, 0.001, C.size))
    fit = fit_isoflop(C, N, loss)
    assert fit.a == pytest.approx(law.a, rel=0.05)
    for budget in np.geomspace(1e18, 1e21, 5):
        assert fit.n_opt(budget) == pytest.approx(law.optimal_allocation(budget)[0], rel=0.05)
        assert fit.d_opt(budget) == pytest.approx(law.optimal_allocation(budget)[1], rel=0.05)


def test_budgets_without_a_vertex_are_reported_and_left_out(quokka_points):
    C, N, loss = (a.copy() for a in quokka_points)
    # budget 3e18: turn its losses upside down, so its parabola opens downward
    top = C == 3e18
    loss[top] = 2 * loss[top].mean() - loss[top]
    # budget 1e21: keep only two sizes
    big = np.flatnonzero(C == 1e21)
    keep = np.ones(C.size, bool)
    keep[big[2:]] = False
    fit = fit_isoflop(C[keep], N[keep], loss[keep])
    reasons = {s.budget_flops: s.reason for s in fit.skipped_budgets}
    assert set(reasons) == {3e18, 1e21}
    assert "downward" in reasons[3e18]
    assert "2 distinct" in reasons[1e21]
    assert 3e18 not in [p.budget_flops for p in fit.budgets]
    assert len(fit.budgets) == 7
    assert fit.a == pytest.approx(0.514, abs=0.03)


def test_parabola_vertex_and_coefficients():
    N = np.geomspace(1e7, 3e9, 6)  # the vertex 1e8 is off the grid's centre
    x = np.log(N)
    x0 = np.log(1e8)
    loss = 3.0 + 0.05 * (x - x0) ** 2
    p = fit_budget_parabola(1e19, N, loss)
    assert isinstance(p, BudgetParabola)
    assert p.n_opt == pytest.approx(1e8, rel=1e-8)
    assert p.loss_opt == pytest.approx(3.0, rel=1e-10)
    assert p.d_opt == pytest.approx(1e19 / 6e8, rel=1e-8)
    np.testing.assert_allclose(p.loss_at(N), loss, rtol=1e-10)
    assert p.vertex_inside
    # budgets read back through float arithmetic still group together
    fit = fit_isoflop(
        np.r_[np.full(6, 1e19) * (1 + 1e-6 * np.arange(6)), np.full(6, 1e20)],
        np.r_[N, N * 3],
        np.r_[loss, loss - 0.2],
    )
    assert [b.n_points for b in fit.budgets] == [6, 6]


def test_bootstrap_intervals(quokka_points):
    fit = fit_isoflop(*quokka_points, n_bootstrap=60, seed=1)
    assert isinstance(fit, IsoFlopFit) and fit.n_bootstrap_ok == 60
    lo, hi = fit.intervals["a"]
    assert lo < fit.a < hi
    assert hi - lo < 0.15


def test_too_few_budgets_raise_with_reasons():
    N = np.geomspace(1e7, 1e9, 5)
    with pytest.raises(LawInputError, match="at least 2 budgets"):
        fit_isoflop(np.full(5, 1e19), N, 3 + (np.log(N) - 18) ** 2)


def test_holdout_predicts_the_largest_budget(quokka_points):
    held = holdout_isoflop(*quokka_points)
    print(held.describe())
    assert "1e+21" in held.held_out
    assert held.n_held_out == 7
    # four times more compute than any fitted budget; Quokka's points are smooth enough for 15%
    assert abs(held.metrics["relative_error"]) < 0.15
    # the error really is the predicted-vs-vertex error
    assert held.predicted[0] / held.observed[0] - 1 == pytest.approx(held.metrics["relative_error"])


def test_a_budget_whose_vertex_lies_outside_its_sizes_still_counts():
    # Three budgets of a known parabola family with N_opt = 2e3 (C / 1e10)^2; the smallest
    # budget's optimum lies below the sizes it ran. Its own vertex is an extrapolation, but
    # its runs still pin the law down: the joint fit recovers the family's law exactly.
    sizes = np.array([4e3, 1e4, 3e4, 1e5])
    C, N, loss = [], [], []
    for budget, n_opt in ((1e10, 2e3), (2e10, 8e3), (4e10, 3.2e4)):
        C += [budget] * sizes.size
        N += list(sizes)
        loss += list(2.0 + 0.1 * (np.log(sizes) - np.log(n_opt)) ** 2)
    fit = fit_isoflop(C, N, loss)
    assert len(fit.budgets) == 3 and not fit.budgets[0].vertex_inside
    assert fit.law_budgets == (1e10, 2e10, 4e10)
    assert fit.a == pytest.approx(2.0, rel=1e-5)
    assert fit.n_opt(1e10) == pytest.approx(2e3, rel=1e-4)
