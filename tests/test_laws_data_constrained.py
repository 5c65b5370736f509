"""Data-constrained laws: Quokka eq. 14 (recovery, held-out curves against the published eq. 15,
max useful epochs found globally, optimal allocation) and Muennighoff's effective data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from quokka_ray.laws import (
    DataConstrainedLaw,
    LawInputError,
    ParametricFit,
    data_constrained_objective,
    effective_data_muennighoff,
    fit_data_constrained,
    fit_muennighoff,
    holdout_data_constrained,
)
from quokka_ray.laws.muennighoff import MuennighoffLaw
from quokka_ray.laws.published import reference_csv

# Quokka eq. 15 as printed (quokka_ray/laws/reference/README.md)
EQ15 = DataConstrainedLaw(
    A=1535.23, alpha=0.42, B=54.21, beta=0.13, p_e=1.49, c_p=254.35, m_p=0.39, k_p=0.55, gamma=0.40
)


def test_recovers_known_coefficients_from_noisy_data():
    grid = itertools.product(
        np.geomspace(1e7, 3e9, 6), np.geomspace(1e7, 1e9, 5), np.geomspace(1, 1000, 25)
    )
    N, U, epochs = np.array(list(grid)).T
    rng = np.random.default_rng(0)
    loss = EQ15.loss(N, U, epochs) * np.exp(rng.normal(0, 0.002, N.size))
    fit = fit_data_constrained(N, U, epochs, loss)
    assert fit.objective <= data_constrained_objective(EQ15, N, U, epochs, loss)
    for name in ("A", "alpha", "B", "beta", "p_e", "m_p", "k_p", "gamma"):
        assert getattr(fit, name) == pytest.approx(getattr(EQ15, name), rel=0.05), name
    # c_p alone is poorly determined (ln e_p = ln c_p + m_p ln U - k_p ln N with ln U, ln N ~ 20
    # trades it against m_p and k_p); the repetition scale e_p it sets is what the data fix.
    np.testing.assert_allclose(fit.repetition_scale(N, U), EQ15.repetition_scale(N, U), rtol=0.05)
    for n, u in ((1e8, 1e8), (1e9, 3e7)):
        assert fit.max_epochs(n, u) == pytest.approx(EQ15.max_epochs(n, u), rel=0.05)


def test_fit_on_four_fifths_beats_eq15_on_the_held_out_curves():
    df = pd.read_csv(reference_csv("quokka_data_constrained_curves.csv"))
    assert df.groupby(["unique_tokens", "params"]).ngroups == 48
    held, law = holdout_data_constrained(
        df["params"], df["unique_tokens"], df["epochs"], df["final_val_loss"], reference=EQ15
    )
    print(held.describe())
    assert held.held_out.startswith("9 of 48")
    assert held.n_fit + held.n_held_out == len(df)
    for metric in ("rmse_log_loss", "mae_loss"):
        assert held.metrics[metric] < held.reference_metrics[metric], metric
    # the fitted law is a real fit, not a copy of eq. 15 or a degenerate one
    assert 0.05 < law.gamma < 2 and law.alpha > 0 and law.beta > 0


def _naive_local_minimum(law, N, U):
    res = minimize(lambda e: law.loss(N, U, e[0]), [1.0], bounds=[(1.0, None)], method="L-BFGS-B")
    return float(res.x[0])


def test_max_epochs_is_the_global_minimum_not_the_one_at_one_epoch():
    N, U = 1e9, 1e8  # eq. 15: gamma = 0.4 < 1, so the loss rises right after one epoch
    assert EQ15.gamma < 1
    assert _naive_local_minimum(EQ15, N, U) == pytest.approx(1.0, abs=1e-6)  # the trap exists
    epochs = np.r_[1.0, 1.0 + np.geomspace(1e-9, 1e6, 400_001)]
    brute = epochs[np.argmin(EQ15.loss(N, U, epochs))]
    found = EQ15.max_epochs(N, U)
    assert found == pytest.approx(brute, rel=1e-3)
    assert found > 10
    assert EQ15.loss(N, U, found) < EQ15.loss(N, U, 1.0) - 0.5


def test_max_epochs_is_one_when_repeating_never_pays():
    law = DataConstrainedLaw(
        A=1535.23,
        alpha=0.42,
        B=54.21,
        beta=0.13,
        p_e=0.05,
        c_p=254.35,
        m_p=0.39,
        k_p=0.55,
        gamma=0.4,
    )
    assert law.max_epochs(1e9, 1e8) == 1.0
    # with gamma > 1 the penalty starts flat and a few epochs always help
    smooth = DataConstrainedLaw(
        A=1535.23,
        alpha=0.42,
        B=54.21,
        beta=0.13,
        p_e=1.0,
        c_p=254.35,
        m_p=0.39,
        k_p=0.55,
        gamma=1.5,
    )
    e = smooth.max_epochs(1e9, 1e8)
    epochs = np.r_[1.0, 1.0 + np.geomspace(1e-9, 1e6, 200_001)]
    assert e == pytest.approx(epochs[np.argmin(smooth.loss(1e9, 1e8, epochs))], rel=1e-3)


def test_optimal_allocation_minimises_over_size_and_epochs():
    U = 1e8
    n_opt, e_opt = EQ15.optimal_allocation(U)
    best = EQ15.loss(n_opt, U, e_opt)
    ns = np.geomspace(1e6, 1e12, 241)
    es = np.r_[1.0, 1.0 + np.geomspace(1e-4, 1e5, 400)]
    grid = EQ15.loss(ns[:, None], U, es[None, :])
    assert best <= grid.min() + 1e-9
    i, j = np.unravel_index(np.argmin(grid), grid.shape)
    assert n_opt == pytest.approx(ns[i], rel=0.1)
    assert e_opt == pytest.approx(EQ15.max_epochs(n_opt, U), rel=1e-9)


def test_data_constrained_input_errors():
    with pytest.raises(LawInputError, match="more than one epoch"):
        fit_data_constrained(np.full(12, 1e8), np.full(12, 1e9), np.ones(12), np.full(12, 3.0))
    with pytest.raises(LawInputError, match="at least 10"):
        fit_data_constrained([1e8] * 3, [1e9] * 3, [2.0] * 3, [3.0] * 3)


def test_effective_data_muennighoff():
    U = 1e9
    assert effective_data_muennighoff(U, 0.5 * U, 15.0) == pytest.approx(0.5 * U)  # < 1 epoch
    assert effective_data_muennighoff(U, U, 15.0) == pytest.approx(U)
    # a few repeats are worth almost fresh data; infinitely many cap at U (1 + R*)
    assert effective_data_muennighoff(U, 2 * U, 15.0) == pytest.approx(2 * U, rel=0.04)
    assert effective_data_muennighoff(U, 1e6 * U, 15.0) == pytest.approx(16 * U, rel=1e-6)
    R = 10.0
    expected = U + U * 15.0 * (1 - np.exp(-R / 15.0))
    assert effective_data_muennighoff(U, (R + 1) * U, 15.0) == pytest.approx(expected)


def test_muennighoff_half_lives_recovered():
    true = MuennighoffLaw(
        A=520.8, B=1487.7, E=1.869, alpha=0.3527, beta=0.3527, R_star_D=15.39, R_star_N=5.31
    )
    U = np.geomspace(1e8, 1e10, 4)
    grid = np.array(list(itertools.product(U, [0.3, 1.0, 3.0, 10.0], np.geomspace(1, 300, 12))))
    U, scale, epochs = grid.T
    N = true.optimal_params_for_tokens(U) * scale  # sizes below and above the optimum for U
    rng = np.random.default_rng(2)
    loss = true.loss(N, U, epochs) * np.exp(rng.normal(0, 0.001, N.size))
    base = ParametricFit(E=true.E, A=true.A, B=true.B, alpha=true.alpha, beta=true.beta)
    fit = fit_muennighoff(N, U, epochs, loss, base=base)
    assert fit.R_star_D == pytest.approx(15.39, rel=0.05)
    assert fit.R_star_N == pytest.approx(5.31, rel=0.05)
