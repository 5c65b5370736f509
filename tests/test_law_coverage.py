"""Do the intervals quokka prints cover the truth as often as they claim?

Simulated IsoFLOP sweeps are drawn from a known law and fitted by quokka's own fitters, as
`quokka fit` fits recorded runs, and each 95% interval is checked against the truth:

- the law: Quokka's eq. 13, L(N, D) = 2.413 + 798.6 / N^0.379 + 4604.9 / D^0.378, with
  C = 6 N D; its IsoFLOP exponent is beta / (alpha + beta) = 0.4993 and its N_opt(C) and
  L_opt(C) have closed forms;
- the noise model: each run's final loss is the law's plus an independent Gaussian draw of
  sd 0.03 nats (the smoothed training losses of the paper's runs scatter by about 0.02 about
  their parabolas);
- the designs: 3 budgets (1e18, 1e19, 1e20 FLOPs) x 4 sizes a factor 3 apart, and 5 budgets
  (1e18 to 1e20) x 6 sizes a factor 2 apart, each with the sizes centred on every budget's
  true optimum, and with each budget's sizes off-centre by a uniform draw of up to 0.8 in
  ln N;
- the quantities: the exponent a of N_opt = k_N C^a (its interval from `fit_isoflop`), and
  `--propose 4e20`'s loss: the prediction interval of the proposed run's final loss, checked
  against that run's loss drawn from the law with the same noise.

A sweep without an interval counts as a miss. Each design runs 200 sweeps with a fixed seed,
and coverage must lie in [0.90, 0.99]: with 200 sweeps a true coverage of 0.95 lands outside
that range with probability under 1%.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from quokka_ray.laws.isoflop import fit_isoflop
from quokka_ray.laws.proposal import ProposalRequest, propose

# 800 sweeps fitted with profile intervals: minutes on 2 cores, so in `make test-cluster`.
pytestmark = pytest.mark.cluster

E, A, ALPHA, B, BETA = 2.413, 798.6, 0.379, 4604.9, 0.378
TRUE_EXPONENT = BETA / (ALPHA + BETA)
NOISE_SD = 0.03
SWEEPS = 200
TARGET_FLOPS = 4e20
DESIGNS = {
    "3 budgets x 4 sizes, centred": (np.array([1e18, 1e19, 1e20]), 4, 3.0, 0.0),
    "5 budgets x 6 sizes, centred": (np.geomspace(1e18, 1e20, 5), 6, 2.0, 0.0),
    "3 budgets x 4 sizes, off-centre up to 0.8": (np.array([1e18, 1e19, 1e20]), 4, 3.0, 0.8),
    "5 budgets x 6 sizes, off-centre up to 0.8": (np.geomspace(1e18, 1e20, 5), 6, 2.0, 0.8),
}


def true_loss(N, D):
    return E + A / np.power(N, ALPHA) + B / np.power(D, BETA)


def true_n_opt(C):
    G = (ALPHA * A / (BETA * B)) ** (1.0 / (ALPHA + BETA))
    return G * (C / 6.0) ** TRUE_EXPONENT


def draw_sweep(rng, budgets, sizes, ratio, off_centre):
    """One sweep's (C, N, D, loss): `sizes` sizes `ratio` apart per budget, their centre
    moved from the true optimum by a uniform draw in [-off_centre, off_centre] in ln N."""
    C, N = [], []
    for budget in budgets:
        shift = rng.uniform(-off_centre, off_centre)
        x = math.log(true_n_opt(budget)) + shift + (np.arange(sizes) - (sizes - 1) / 2) * \
            math.log(ratio)
        C += [budget] * sizes
        N += list(np.exp(x))
    C, N = np.array(C), np.array(N)
    D = C / (6.0 * N)
    return C, N, D, true_loss(N, D) + rng.normal(0.0, NOISE_SD, N.size)


@pytest.mark.parametrize("design", list(DESIGNS))
def test_intervals_cover_the_truth_as_often_as_they_claim(design):
    budgets, sizes, ratio, off_centre = DESIGNS[design]
    rng = np.random.default_rng(sorted(DESIGNS).index(design))
    exponent_hits = loss_hits = 0
    for _ in range(SWEEPS):
        C, N, D, loss = draw_sweep(rng, budgets, sizes, ratio, off_centre)
        fit = fit_isoflop(C, N, loss)
        lo, hi = fit.intervals.get("a", (math.inf, -math.inf))
        exponent_hits += lo <= TRUE_EXPONENT <= hi
        proposal = propose({"isoflop": fit}, "dlm", ProposalRequest(TARGET_FLOPS),
                           {"C": C, "N": N, "D": D, "loss": loss})
        n, d = proposal.run.non_embedding_params, proposal.run.tokens
        actual = true_loss(n, d) + rng.normal(0.0, NOISE_SD)
        lo, hi = proposal.final_loss_interval or (math.inf, -math.inf)
        loss_hits += lo <= actual <= hi
    coverage = {"exponent": exponent_hits / SWEEPS, "proposed loss": loss_hits / SWEEPS}
    print(design, coverage)
    for quantity, share in coverage.items():
        assert 0.90 <= share <= 0.99, f"{design}: {quantity} interval covers {share:.1%}"
