"""Closing the loop (laws/proposal.py): the compute-optimal run a fitted law predicts for a
budget it never ran, with the loss it predicts for the run that would train, and the check of
that prediction against the run's actual loss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quokka_ray.laws import LawInputError, ParametricFit, fit_isoflop, fit_parametric, write_report
from quokka_ray.laws.isoflop import fit_budget_parabola
from quokka_ray.laws.proposal import (
    LossPrediction,
    ProposalRequest,
    SizedRun,
    prediction_lines,
    propose,
)
from quokka_ray.laws.published import REFERENCE_DIR
from quokka_ray.laws.surface import IsoFlopSurface, residual_sd

# IsoFLOP runs around a known surface: N_opt = 0.05 C^0.5, L_opt = 8 C^-0.05, curvature 0.25.
K_N, A = 0.05, 0.5


def surface_loss(N, C):
    return 8.0 * np.asarray(C, float) ** -0.05 + 0.25 * np.log(N / (K_N * C**A)) ** 2


def isoflop_runs(noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    C = np.repeat([1e15, 3e15, 1e16], 6)
    N = K_N * C**A * np.tile(np.exp(np.linspace(-1.5, 1.5, 6)), 3)
    loss = surface_loss(N, C) + rng.normal(0, noise, C.size)
    return {"C": C, "N": N, "D": C / (6 * N), "loss": loss}


def test_the_isoflop_surface_recovers_its_law():
    runs = isoflop_runs(noise=0.0)
    fit = fit_isoflop(runs["C"], runs["N"], runs["loss"])
    surface = IsoFlopSurface.from_parabolas(fit.budgets)
    assert surface.curvature == pytest.approx(0.25, rel=1e-6)
    for C in (1e15, 1e17):
        assert surface.n_opt(C) == pytest.approx(K_N * C**A, rel=1e-6)
        assert surface.loss(3 * K_N * C**A, C) == pytest.approx(
            surface_loss(3 * K_N * C**A, C), rel=1e-6)
    sd, dof = residual_sd(fit.budgets, runs["C"], runs["N"], runs["loss"])
    assert dof == 3 * (6 - 3) and sd == pytest.approx(0.0, abs=1e-9)


def powers_of_two(label: str, n_opt: float, budget: float) -> SizedRun:
    """A sizing rule that builds only models of 2^k parameters: the run is off N_opt."""
    n = 2 ** round(math.log2(n_opt))
    return SizedRun(n, round(budget / (6 * n)), "power of two")


def test_isoflop_proposal_predicts_the_sized_run():
    runs = isoflop_runs(noise=0.005)
    fit = fit_isoflop(runs["C"], runs["N"], runs["loss"], n_bootstrap=200, seed=0)
    budget = 1e17
    p = propose({"isoflop": fit}, "dlm", ProposalRequest(budget, size=powers_of_two), runs,
                seed=0)
    assert p.law == "isoflop" and p.extrapolation == pytest.approx(10.0)
    assert p.n_opt == pytest.approx(K_N * budget**A, rel=0.1)
    assert p.d_opt == pytest.approx(budget / (6 * p.n_opt))
    lo, hi = p.n_opt_interval
    assert lo < K_N * budget**A < hi
    truth = surface_loss(p.run.non_embedding_params, 6.0 * p.run.non_embedding_params
                         * p.run.tokens)
    assert p.final_loss == pytest.approx(truth, abs=0.02)
    lo, hi = p.final_loss_interval
    assert lo < p.final_loss < hi and lo < truth < hi
    assert "profile likelihood" in p.method and 0.002 < p.residual_sd < 0.01


def test_no_interval_without_a_spare_run(tmp_path):
    """Two budgets with only the 3 sizes a parabola needs: no run is spare to estimate the
    noise, so no interval rather than one of zero width, and two budgets cannot place a floor
    under the loss, so the loss comes from the power law through their vertices, said so."""
    runs = isoflop_runs(noise=0.01)
    keep = np.tile([True, False, True, False, True, False], 3) & (runs["C"] < 1e16)
    runs = {k: v[keep] for k, v in runs.items()}
    fit = fit_isoflop(runs["C"], runs["N"], runs["loss"], n_bootstrap=200, seed=0)
    assert fit.n_bootstrap_ok > 0
    p = propose({"isoflop": fit}, "dlm", ProposalRequest(1e17), runs)
    assert p.n_opt_interval is None and p.final_loss_interval is None
    assert math.isnan(p.residual_sd) and math.isfinite(p.final_loss)
    assert fit.intervals == {} and "no run is spare" in fit.interval_note
    report = write_report(_table(runs), tmp_path, title="three sizes", n_bootstrap=200,
                          laws=["isoflop"], propose=ProposalRequest(1e17))
    text = report.markdown_path.read_text()
    assert "No interval for the loss: no loss prediction: a loss law with a floor needs 3" in text
    assert "the power law without a floor" in text
    assert "Intervals: none: no run is spare" in text


def test_parametric_proposal_uses_the_closed_form_allocation():
    law = ParametricFit(E=2.413, A=798.6, B=4604.9, alpha=0.379, beta=0.378)
    rng = np.random.default_rng(1)
    N = np.repeat(np.geomspace(1e7, 1e9, 5), 4)
    D = np.tile(np.geomspace(1e9, 1e11, 4), 5)
    loss = law.predict(N, D) * np.exp(rng.normal(0, 0.002, N.size))
    fit = fit_parametric(N, D, loss, n_bootstrap=30, seed=0)
    runs = {"C": np.full(N.size, np.nan), "N": N, "D": D, "loss": loss}
    p = propose({"parametric": fit}, "ar", ProposalRequest(1e21), runs)
    assert p.law == "parametric"
    assert p.n_opt == pytest.approx(law.optimal_allocation(1e21)[0], rel=0.3)
    assert p.final_loss == pytest.approx(law.predict(p.run.non_embedding_params, p.run.tokens),
                                         rel=0.01)
    with pytest.raises(LawInputError, match="no isoflop law"):
        propose({"parametric": fit}, "ar", ProposalRequest(1e21, law="isoflop"), runs)


def test_bad_requests_are_refused():
    for budget in (0.0, -1.0, math.inf):
        with pytest.raises(LawInputError):
            ProposalRequest(budget)
    with pytest.raises(LawInputError):
        ProposalRequest(1e12, law="data-constrained")


def _table(runs) -> pd.DataFrame:
    return pd.DataFrame({"trial_name": [f"t{i}" for i in range(runs["C"].size)], "kind": "dlm",
                         "non_embedding_params": runs["N"], "tokens": runs["D"],
                         "final_loss": runs["loss"], "budget_flops": runs["C"],
                         "flops": runs["C"]})


def test_report_holds_the_proposal_and_the_prediction_against_actual(tmp_path):
    runs = isoflop_runs(noise=0.005)
    report = write_report(_table(runs), tmp_path / "fit", title="surface", n_bootstrap=50,
                          laws=["isoflop"], propose=ProposalRequest(1e17))
    proposal = report.fits["dlm"]["proposal"]
    text = report.markdown_path.read_text()
    assert "Proposed compute-optimal run for C = 1e+17 FLOPs" in text
    assert f"{proposal.final_loss:.4g}" in text and "proposal (isoflop)" in report.summary

    # The proposed run, trained: its actual loss beside the prediction.
    n, d = proposal.run.non_embedding_params, proposal.run.tokens
    actual = float(surface_loss(n, 6.0 * n * d))
    run = pd.DataFrame({"trial_name": ["proposed"], "kind": ["dlm"],
                        "non_embedding_params": [n], "tokens": [d], "final_loss": [actual]})
    prediction = LossPrediction(
        fitted_experiment="surface", objective="dlm", law="isoflop", budget_flops=1e17,
        n_opt=proposal.n_opt, n_opt_interval=proposal.n_opt_interval, d_opt=proposal.d_opt,
        non_embedding_params=n, tokens=d, final_loss=proposal.final_loss,
        final_loss_interval=proposal.final_loss_interval)
    checked = write_report(run, tmp_path / "check", title="check", n_bootstrap=0,
                           predictions=[prediction])
    text = checked.markdown_path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `dlm`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[4]) == pytest.approx(proposal.final_loss, rel=1e-3)
    assert float(cells[6]) == pytest.approx(actual, rel=1e-3)
    assert cells[-1] == "yes"
    assert "predicted vs actual (dlm" in checked.summary
    md, summary = prediction_lines(run.assign(kind="ar"), [prediction])
    assert any("no finished run" in line for line in md)


def test_the_papers_points_up_to_3e20_propose_the_measured_1e21_optimum():
    """Quokka's 87 IsoFLOP points (shipped reference data), fitted on the budgets up to 3e20
    FLOPs, and asked for 1e21: both intervals hold the optimum the paper measured at 1e21 (the
    vertex of that budget's own parabola through its 7 runs: N = 1.38e9, loss 2.937). A law
    without a floor predicted 2.889 there, its interval's upper end at the truth."""
    points = pd.read_csv(REFERENCE_DIR / "quokka_isoflop_points.csv")
    C, N, loss = (points[c].to_numpy(float) for c in ("C_flops", "N_params_plot",
                                                        "final_train_loss_smoothed"))
    measured = fit_budget_parabola(1e21, N[C == 1e21], loss[C == 1e21])
    assert measured.n_opt == pytest.approx(1.38e9, rel=0.01)
    assert measured.loss_opt == pytest.approx(2.937, abs=0.001)
    fitted = C <= 3e20
    runs = {"C": C[fitted], "N": N[fitted], "D": C[fitted] / (6 * N[fitted]),
            "loss": loss[fitted]}
    fit = fit_isoflop(runs["C"], runs["N"], runs["loss"])
    p = propose({"isoflop": fit}, "dlm", ProposalRequest(1e21), runs)
    lo, hi = p.n_opt_interval
    assert lo < measured.n_opt < hi
    # the proposed run is N_opt itself (no sizing rule): its loss is the optimum's
    lo, hi = p.final_loss_interval
    assert lo < measured.loss_opt < hi
    assert p.final_loss > 2.9  # the floor bends the law up from the no-floor 2.889
