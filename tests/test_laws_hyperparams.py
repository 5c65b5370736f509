"""Hyperparameter laws B_opt(C), lr_opt(C) recovered from noisy sweeps, and the AR -> DLM
transfer verdict."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from quokka_ray.laws import compare_transfer, fit_hyperparameter_law, near_optimal_mask

# DeepSeek LLM's laws (quokka_ray/laws/reference/README.md), used as the truth of the synthetic sweeps.
LR_K, LR_EXP = 0.3118, -0.1250
BATCH_K, BATCH_EXP = 0.2920, 0.3271
BUDGETS = np.geomspace(1e17, 1e21, 6)
LR_GRID = np.geomspace(1e-4, 1e-1, 25)  # one fixed grid for all budgets, as a real sweep
BATCH_GRID = np.geomspace(2**14, 2**24, 21)


def sweep(kind: str, seed: int, lr_shift: float = 1.0, noise: float = 0.001) -> pd.DataFrame:
    """Loss = L0(C) (1 + 0.02 ln^2(lr / lr_opt) + 0.01 ln^2(B / B_opt)) with lognormal noise;
    lr_opt = lr_shift LR_K C^LR_EXP, B_opt = BATCH_K C^BATCH_EXP tokens."""
    rng = np.random.default_rng(seed)
    rows = []
    for C, lr, batch in itertools.product(BUDGETS, LR_GRID, BATCH_GRID):
        lr_opt = lr_shift * LR_K * C**LR_EXP
        b_opt = BATCH_K * C**BATCH_EXP
        penalty = 0.02 * np.log(lr / lr_opt) ** 2 + 0.01 * np.log(batch / b_opt) ** 2
        loss = (2.0 + 300 * C**-0.15) * (1 + penalty) * np.exp(rng.normal(0, noise))
        rows.append(
            {
                "kind": kind,
                "budget_flops": C,
                "flops": C,
                "lr": lr,
                "batch_tokens": batch,
                "weight_decay": 0.1,
                "final_loss": loss,
            }
        )
    return pd.DataFrame(rows)


def test_hyperparameter_laws_recovered_from_noisy_sweeps():
    df = sweep("ar", seed=0)
    lr_law = fit_hyperparameter_law(df["budget_flops"], df["lr"], df["final_loss"])
    batch_law = fit_hyperparameter_law(df["budget_flops"], df["batch_tokens"], df["final_loss"])
    print(lr_law.describe("C", "lr_opt"), "|", batch_law.describe("C", "B_opt"))
    assert lr_law.exponent == pytest.approx(LR_EXP, abs=0.03)
    assert batch_law.exponent == pytest.approx(BATCH_EXP, abs=0.03)
    for C in (BUDGETS[0], BUDGETS[-1]):
        assert lr_law(C) == pytest.approx(LR_K * C**LR_EXP, rel=0.25)
        assert batch_law(C) == pytest.approx(BATCH_K * C**BATCH_EXP, rel=0.25)


def test_bootstrap_interval_covers_the_truth():
    df = sweep("ar", seed=1)
    law = fit_hyperparameter_law(df["budget_flops"], df["lr"], df["final_loss"], n_bootstrap=30)
    lo, hi = law.intervals["exponent"]
    assert lo <= law.exponent <= hi
    assert hi - lo < 0.1


def test_near_optimal_runs_are_within_the_fraction_of_their_budget_best():
    labels = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    loss = np.array([3.00, 3.02, 3.04, 2.50, 2.53])
    np.testing.assert_array_equal(near_optimal_mask(labels, loss, 0.01), [1, 1, 0, 1, 0])


def test_transfer_verdict_when_optima_coincide():
    ar, dlm = sweep("ar", seed=2), sweep("dlm", seed=3)
    dlm["final_loss"] *= 1.08  # DLMs need more compute for the same loss
    result = compare_transfer(ar, dlm)
    assert len(result.budgets) == BUDGETS.size
    assert max(b.relative_cost for b in result.budgets) < 0.01
    assert all(b.distance_log2 == 0 for b in result.budgets)  # same grids: exact matches
    assert "so they transfer" in result.verdict
    for name in ("lr", "batch_tokens"):
        assert result.laws["dlm"][name].exponent == pytest.approx(
            result.laws["ar"][name].exponent, abs=0.03
        )


def test_transfer_verdict_when_dlm_wants_a_larger_learning_rate():
    ar, dlm = sweep("ar", seed=4), sweep("dlm", seed=5, lr_shift=4.0)
    result = compare_transfer(ar, dlm)
    costs = [b.relative_cost for b in result.budgets]
    # 0.02 ln^2(4) = 3.8% at the AR optimum, up to grid spacing
    assert min(costs) > 0.02
    assert "do not transfer" in result.verdict
    ratio = result.laws["dlm"]["lr"](1e19) / result.laws["ar"]["lr"](1e19)
    assert ratio == pytest.approx(4.0, rel=0.3)


def test_transfer_without_common_budgets():
    ar, dlm = sweep("ar", seed=6), sweep("dlm", seed=7)
    dlm["budget_flops"] *= 100
    dlm["flops"] *= 100
    result = compare_transfer(ar[ar.budget_flops < 1e19], dlm[dlm.budget_flops > 1e21])
    assert result.budgets == [] and "not assessed" in result.verdict
