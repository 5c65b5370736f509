"""Where to measure next (laws/suggest.py), on IsoFLOP runs generated from a known law: the run
ranked first narrows the bootstrap interval of the extrapolated N_opt more than runs drawn at
random from the same candidates do."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quokka_ray.laws import LawInputError, SizedRun, fit_isoflop, write_report
from quokka_ray.laws.suggest import Refusal, SuggestRequest, quantity_interval, suggest_runs

# The known law: N_opt = K_N C^A, L_opt = 8 C^-0.05, curvature 0.25 per (ln N)^2, noise 0.01.
K_N, A, CURVATURE, NOISE = 0.05, 0.5, 0.25, 0.01
TARGET = 1e18


def true_loss(N, C):
    N, C = np.asarray(N, float), np.asarray(C, float)
    return 8.0 * C**-0.05 + CURVATURE * np.log(N / (K_N * C**A)) ** 2


def sweep(seed: int, budgets=(1e15, 3e15, 1e16), per_budget: int = 4, spread: float = 1.2,
          off_centre: bool = True):
    """A sweep whose size grid (spread: ln N either side) is centred off each budget's optimum
    by up to 60%, as a real sweep's would be, with noisy losses."""
    rng = np.random.default_rng(seed)
    C, N = [], []
    for c in budgets:
        centre = K_N * c**A * (rng.uniform(0.6, 1.6) if off_centre else 1.0)
        C += [c] * per_budget
        N += list(centre * np.exp(np.linspace(-spread, spread, per_budget)))
    C, N = np.array(C), np.array(N)
    return C, N, true_loss(N, C) + rng.normal(0, NOISE, C.size)


def log_width(C, N, loss, seed: int) -> float:
    """Width of the bootstrap interval of ln N_opt(TARGET)."""
    fit = fit_isoflop(C, N, loss, n_bootstrap=100, seed=seed)
    lo, hi = quantity_interval(fit, TARGET)
    return float(np.log(hi / lo))


def with_runs(C, N, loss, runs):
    """The sweep plus runs (budget, N) measured at their true-law loss."""
    c = np.array([r[0] for r in runs])
    n = np.array([r[1] for r in runs])
    return np.concatenate([C, c]), np.concatenate([N, n]), np.concatenate([loss, true_loss(n, c)])


def test_first_suggestion_narrows_more_than_a_random_candidate():
    first, random, before = [], [], []
    for seed in range(4):
        C, N, loss = sweep(seed)
        fit = fit_isoflop(C, N, loss, n_bootstrap=100, seed=seed)
        plan = suggest_runs(fit, C, N, loss, SuggestRequest(1, TARGET))
        move = [(r.budget_flops, r.non_embedding_params) for r in plan.runs if r.move == 1]
        assert move and len(plan.pool) > 20
        before.append(log_width(C, N, loss, seed))
        first.append(log_width(*with_runs(C, N, loss, move), seed))
        rng = np.random.default_rng(1000 + seed)
        for _ in range(6):
            picks = rng.choice(len(plan.pool), size=len(move), replace=False)
            random.append(log_width(*with_runs(C, N, loss, [plan.pool[i] for i in picks]), seed))
    print(f"interval width of ln N_opt: before {np.mean(before):.3f}, first suggestion "
          f"{np.mean(first):.3f}, random candidate {np.mean(random):.3f}")
    assert np.mean(first) < np.mean(random)
    assert np.mean(first) < np.mean(before)


def test_a_ranked_plan():
    C, N, loss = sweep(0)
    fit = fit_isoflop(C, N, loss, n_bootstrap=100, seed=0)
    plan = suggest_runs(fit, C, N, loss, SuggestRequest(4, TARGET))
    assert [r.rank for r in plan.runs] == [1, 2, 3, 4]
    cumulative = [r.cumulative for r in plan.runs]
    assert all(0 < r.narrowing < 1 for r in plan.runs)
    assert cumulative == sorted(cumulative) and 0 < cumulative[-1] < 1
    for r in plan.runs:
        assert r.tokens == pytest.approx(r.budget_flops / (6 * r.non_embedding_params))
        # a suggestion is never a run the sweep already has
        assert not np.any(np.isclose(N[np.isclose(C, r.budget_flops)], r.non_embedding_params))
    lo, hi = plan.interval
    assert lo < plan.estimate < hi
    after = plan.interval_after
    assert lo < after[0] < plan.estimate < after[1] < hi
    assert plan.estimate == pytest.approx(K_N * TARGET**A, rel=0.3)
    # Deterministic: the same fit gives the same plan.
    again = suggest_runs(fit, C, N, loss, SuggestRequest(4, TARGET))
    assert again.runs == plan.runs


def test_a_new_budget_is_suggested_as_a_profile_of_three_sizes():
    """Two close budgets, each with 12 sizes centred on its optimum: a third budget, further
    out, adds more per run than any further size at the two; it only counts with 3 sizes
    around its vertex."""
    C, N, loss = sweep(1, budgets=(1e15, 2e15), per_budget=12, spread=1.5, off_centre=False)
    fit = fit_isoflop(C, N, loss, n_bootstrap=100, seed=1)
    plan = suggest_runs(fit, C, N, loss, SuggestRequest(3, 1e20))
    assert len(plan.runs) == 3 and {r.move for r in plan.runs} == {1}
    assert {r.budget for r in plan.runs} == {"new"}
    (budget,) = {r.budget_flops for r in plan.runs}
    assert budget == pytest.approx(4e15)
    sizes = sorted(r.non_embedding_params for r in plan.runs)
    assert sizes[0] < fit.n_opt(budget) < sizes[-1]
    # With room for one run only, the profile cannot be suggested.
    one = suggest_runs(fit, C, N, loss, SuggestRequest(1, 1e20))
    assert one.runs[0].budget == "measured"


def test_a_budget_left_out_is_completed():
    """The largest budget ran two sizes, both below its optimum, so the fit leaves it out; a
    run above the optimum gives it back its vertex."""
    C, N, loss = sweep(2)
    top = np.isclose(C, C.max())
    below = np.where(np.arange(top.sum()) < top.sum() // 2, -2.4, -0.6)
    N[top] = K_N * C.max() ** A * np.exp(below)
    loss[top] = true_loss(N[top], C[top])
    fit = fit_isoflop(C, N, loss, n_bootstrap=100, seed=2)
    assert [s.budget_flops for s in fit.skipped_budgets] == [C.max()]
    plan = suggest_runs(fit, C, N, loss, SuggestRequest(2, TARGET))
    completing = [r for r in plan.runs if r.budget == "left out"]
    assert completing and max(r.non_embedding_params for r in completing) > fit.n_opt(C.max())


def test_candidates_are_models_the_sizing_rule_builds():
    """With a sizing rule (here: only powers of two, D in whole batches of 1024 tokens), every
    suggestion is a model that can be built, with the tokens it would train."""
    def powers_of_two(objective: str, n: float, budget: float) -> SizedRun:
        built = 2 ** round(math.log2(n))
        steps = max(1, round(budget / (6 * built) / 1024))
        return SizedRun(built, 1024 * steps, "2^k", steps)

    C, N, loss = sweep(0)
    fit = fit_isoflop(C, N, loss, n_bootstrap=50, seed=0)
    plan = suggest_runs(fit, C, N, loss, SuggestRequest(4, TARGET, size=powers_of_two), "dlm")
    assert len(plan.runs) == 4
    for r in plan.runs:
        assert math.log2(r.non_embedding_params) == pytest.approx(
            round(math.log2(r.non_embedding_params)))
        assert r.tokens == powers_of_two("dlm", r.non_embedding_params, r.budget_flops).tokens
    # A run the screen refuses (here: fewer steps than a study's min_steps) is no candidate,
    # and is named with its check.
    fewest = sorted(powers_of_two("dlm", n, c).steps for c, n in plan.pool)[len(plan.pool) // 2]

    def min_steps(objective: str, n: float, budget: float) -> Refusal | None:
        steps = powers_of_two(objective, n, budget).steps
        return None if steps >= fewest else Refusal("min_steps", f"{steps} steps")

    short = suggest_runs(fit, C, N, loss, SuggestRequest(4, TARGET, size=powers_of_two,
                                                         screen=min_steps), "dlm")
    assert 0 < len(short.pool) < len(plan.pool)
    assert all(powers_of_two("dlm", n, c).steps >= fewest for c, n in short.pool)
    refused = [r for r in short.left_out if r.check == "min_steps"]
    assert refused and short.left_out_by_check["min_steps"] == len(refused)
    for r in refused:
        steps = powers_of_two("dlm", r.non_embedding_params, r.budget_flops).steps
        assert steps < fewest and r.reason == f"{steps} steps"
        assert (r.budget_flops, r.non_embedding_params) not in short.pool


def test_the_loss_at_the_optimum_can_be_narrowed_too():
    C, N, loss = sweep(3)
    fit = fit_isoflop(C, N, loss, n_bootstrap=100, seed=3)
    plan = suggest_runs(fit, C, N, loss, SuggestRequest(2, TARGET, quantity="loss"))
    assert plan.quantity == "loss" and len(plan.runs) == 2
    assert plan.estimate == pytest.approx(8.0 * TARGET**-0.05, rel=0.05)


@pytest.mark.parametrize("count,target,quantity", [(0, 1e18, "n_opt"), (2, -1.0, "n_opt"),
                                                   (2, 1e18, "d_opt")])
def test_bad_requests_are_refused(count, target, quantity):
    with pytest.raises(LawInputError):
        SuggestRequest(count, target, quantity)


def test_report_leaves_out_the_runs_that_would_repeat_data(tmp_path):
    """A candidate longer than the fitted runs' unique tokens would see tokens twice: it is
    left out, and the report names it with its check."""
    C, N, loss = sweep(0)
    free = write_report(_runs(C, N, loss, 1e12), tmp_path / "free", title="free",
                        n_bootstrap=50, laws=["isoflop"], suggest=SuggestRequest(3, TARGET))
    longest = max(r.tokens for r in free.fits["dlm"]["suggestions"].runs)
    unique = 0.9 * longest  # the longest run suggested without a limit no longer fits
    report = write_report(_runs(C, N, loss, unique), tmp_path / "held", title="repeats",
                          n_bootstrap=50, laws=["isoflop"], suggest=SuggestRequest(3, TARGET))
    plan = report.fits["dlm"]["suggestions"]
    assert plan.runs and all(r.tokens <= unique for r in plan.runs)
    long = [r for r in plan.left_out if r.check == "corpus"]
    assert long and all(r.tokens > unique for r in long)
    text = report.markdown_path.read_text()
    assert "### Where to measure next: N_opt at C = 1e+18 FLOPs" in text
    assert f"more than the {unique:,.0f} unique ones of the fitted runs' corpus" in text
    assert f"Left out: {len(plan.left_out)} candidate runs (" in text
    assert f"left out {len(plan.left_out)} of" in report.summary


def test_no_suggestion_trains_fewer_tokens_per_parameter_than_the_sweep():
    """Without a study window, a candidate may train no fewer tokens per parameter than the
    fewest any fitted run trained; with one, no fewer than its minimum."""
    C, N, loss = sweep(0)
    ratios = C / (6 * N * N)
    plan = suggest_runs(fit_isoflop(C, N, loss, n_bootstrap=50, seed=0), C, N, loss,
                        SuggestRequest(6, TARGET))
    assert plan.min_tokens_per_param == pytest.approx(ratios.min())
    assert plan.runs and all(r.tokens / r.non_embedding_params >= ratios.min() * (1 - 1e-9)
                             for r in plan.runs)
    short = [r for r in plan.left_out if r.check == "tokens_per_param"]
    assert short and all(r.tokens / r.non_embedding_params < ratios.min() for r in short)
    floor = float(np.median(ratios))
    strict = suggest_runs(fit_isoflop(C, N, loss, n_bootstrap=50, seed=0), C, N, loss,
                          SuggestRequest(6, TARGET, min_tokens_per_param=floor))
    assert all(r.tokens / r.non_embedding_params >= floor for r in strict.runs)
    assert len(strict.left_out) > len(plan.left_out)
    assert "the study's tokens_per_param minimum" in strict.left_out[0].reason


def _runs(C, N, loss, unique_tokens: float) -> pd.DataFrame:
    return pd.DataFrame({"trial_name": [f"t{i}" for i in range(C.size)], "kind": "dlm",
                         "non_embedding_params": N, "tokens": C / (6 * N), "final_loss": loss,
                         "budget_flops": C, "unique_tokens": unique_tokens})
