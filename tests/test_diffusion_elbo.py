"""The Monte-Carlo negative ELBO against integrals and entropies that are known exactly."""

import itertools
import math

import pytest
import torch
from scipy import integrate
from torch import nn

from quokka_ray.diffusion import (
    DEFAULT_T_MIN,
    ObjectiveConfig,
    draw_noise,
    get_schedule,
    per_sequence_loss,
    validation_loss,
)
from quokka_ray.model import ModelConfig, Transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_denoiser(vocab_size: int, seq_len: int) -> Transformer:
    # A large init makes the predictions depend strongly on the context, so E[loss | t] varies
    # with t and a wrong time weighting shows.
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=vocab_size, n_layers=1, d_model=16, n_heads=1, ffn_hidden=32,
                      max_seq_len=seq_len, init_std=0.5)
    return Transformer(cfg).eval()


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_monte_carlo_elbo_matches_the_integral_over_t(schedule_name: str) -> None:
    vocab, mask, length = 5, 4, 6
    model = _tiny_denoiser(vocab, length)
    sequence = torch.tensor([0, 3, 1, 1, 2, 0])
    # Exact E[loss | t]: enumerate all 2^L masks, sum of masked CE for each.
    masks = torch.tensor(list(itertools.product([0, 1], repeat=length)), dtype=torch.bool)
    with torch.no_grad():
        logits = model(torch.where(masks, mask, sequence))
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), sequence.expand(len(masks), -1),
                                     reduction="none")
    masked_ce = (ce * masks).sum(1).double()  # (2^L,)
    n_masked = masks.sum(1).double()
    schedule = get_schedule(schedule_name)

    def expected_loss(t: float) -> float:
        alpha = float(schedule.alpha(torch.tensor(t, dtype=torch.float64)))
        probability = (1 - alpha) ** n_masked * alpha ** (length - n_masked)
        weight = float(schedule.weight(torch.tensor(t, dtype=torch.float64)))
        return weight * float((probability * masked_ce).sum()) / length

    t_min = DEFAULT_T_MIN
    integral = integrate.quad(expected_loss, t_min, 1, limit=200)[0] / (1 - t_min)

    cfg = ObjectiveConfig(schedule=schedule_name, timesteps="antithetic")
    rows = 8192
    noise = draw_noise(cfg, rows, length, vocab, torch.Generator().manual_seed(1), 0.0)
    with torch.no_grad():
        losses = per_sequence_loss(model, sequence.expand(rows, -1), noise, cfg, mask).per_sequence
    standard_error = losses.std().item() / math.sqrt(rows)
    assert standard_error < 0.02 * integral  # the comparison below is a sharp one
    assert abs(losses.mean().item() - integral) < 4 * standard_error
    # validation_loss is the same estimator with its own fixed noise.
    estimate = validation_loss(model, sequence[None], cfg, mask, seed=0,
                               samples_per_sequence=4096, batch_size=1024)
    assert abs(estimate - integral) < 6 * standard_error
    # ...and the MaskGIT weighting (w = 1) estimates something else entirely.
    maskgit_cfg = ObjectiveConfig(schedule=schedule_name, loss="maskgit")
    with torch.no_grad():
        maskgit = per_sequence_loss(model, sequence.expand(rows, -1), noise, maskgit_cfg, mask)
    assert abs(maskgit.per_sequence.mean().item() - integral) > 10 * standard_error


class MarkovChain:
    """A stationary first-order Markov chain over K symbols, with exact conditionals."""

    def __init__(self) -> None:
        self.P = torch.tensor([[0.80, 0.10, 0.05, 0.05],
                               [0.05, 0.80, 0.10, 0.05],
                               [0.05, 0.05, 0.80, 0.10],
                               [0.30, 0.30, 0.30, 0.10]], dtype=torch.float64)
        eigenvalues, eigenvectors = torch.linalg.eig(self.P.T)
        pi = eigenvectors[:, eigenvalues.real.argmax()].real
        self.pi = pi / pi.sum()
        self.K = 4

    def entropy_rate(self) -> float:
        return float(-(self.pi[:, None] * self.P * self.P.log()).sum())

    def marginal_entropy(self) -> float:
        return float(-(self.pi * self.pi.log()).sum())

    def sample(self, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
        x = torch.empty(n, length, dtype=torch.long)
        x[:, 0] = torch.multinomial(self.pi.expand(n, -1), 1, generator=generator)[:, 0]
        for i in range(1, length):
            x[:, i] = torch.multinomial(self.P[x[:, i - 1]], 1, generator=generator)[:, 0]
        return x


class ExactMarkovDenoiser(nn.Module):
    """p(x_i | visible tokens) of the chain: only the nearest visible neighbours matter,
    p ∝ (P^a)[x_left, x_i] (P^b)[x_i, x_right]. The mask token is id K."""

    def __init__(self, chain: MarkovChain, max_len: int, use_context: bool = True):
        super().__init__()
        powers = [torch.eye(chain.K, dtype=torch.float64)]
        for _ in range(max_len):
            powers.append(powers[-1] @ chain.P)
        self.register_buffer("log_powers", torch.stack(powers).clamp_min(1e-300).log())
        self.register_buffer("log_pi", chain.pi.log())
        self.K, self.use_context = chain.K, use_context

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, length = tokens.shape
        visible = tokens != self.K
        index = torch.arange(length).expand(b, -1)
        left = torch.where(visible, index, -1).cummax(dim=1).values
        right = torch.where(visible, index, length).flip(1).cummin(dim=1).values.flip(1)
        x_left = tokens.gather(1, left.clamp(min=0)).clamp(max=self.K - 1)
        x_right = tokens.gather(1, right.clamp(max=length - 1)).clamp(max=self.K - 1)
        left_term = torch.where((left >= 0)[..., None],
                                self.log_powers[index - left.clamp(min=0), x_left],
                                self.log_pi)
        right_term = torch.where((right < length)[..., None],
                                 self.log_powers[right.clamp(max=length - 1) - index, :, x_right],
                                 0.0)
        log_p = left_term + right_term if self.use_context else self.log_pi.expand(b, length, -1)
        log_p = torch.where(visible[..., None], 0.0, log_p)  # unused at clean positions
        mask_column = torch.full((b, length, 1), -1e4, dtype=log_p.dtype)
        return torch.cat([log_p, mask_column], dim=-1).float()


class ExactMarkovPredictor(nn.Module):
    """AR: the logits at position i are log P[x_i, :], the law of x_{i+1}."""

    def __init__(self, chain: MarkovChain):
        super().__init__()
        self.register_buffer("log_P", chain.P.log())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.log_P[tokens.clamp(max=3)].float()


def _mc_loss(model: nn.Module, tokens: torch.Tensor, cfg: ObjectiveConfig, seed: int):
    noise = draw_noise(cfg, tokens.shape[0], tokens.shape[1], 5,
                       torch.Generator().manual_seed(seed), 0.0)
    losses = per_sequence_loss(model, tokens, noise, cfg, mask_token_id=4).per_sequence
    return losses.mean().item(), losses.std().item() / math.sqrt(len(losses)), losses


def test_exact_denoiser_elbo_is_the_entropy_and_bounds_it() -> None:
    chain, length = MarkovChain(), 32
    n = 32768  # the estimator's standard error is then ~0.4% of the entropy
    tokens = chain.sample(n, length, torch.Generator().manual_seed(0))
    rate = chain.entropy_rate()
    per_token_entropy = (chain.marginal_entropy() + (length - 1) * rate) / length  # H(X_1:L)/L
    cfg = ObjectiveConfig(timesteps="antithetic")
    # With the true conditionals the absorbing-diffusion ELBO is tight: E = H(X_1:L) / L.
    loss, standard_error, _ = _mc_loss(ExactMarkovDenoiser(chain, length), tokens, cfg, 1)
    assert standard_error < 0.005 * rate
    # t_min leaves out [0, t_min), ~t_min * rate of the integral: hence the 0.002 * rate.
    assert abs(loss - per_token_entropy) < 4 * standard_error + 0.002 * rate
    # Above the entropy rate (the gap (H(X_1) - rate) / L is ~5 standard errors)...
    assert loss >= rate
    assert (loss - rate) / rate < 0.05  # ...and within a few percent of it
    # A denoiser that ignores the context pays the marginal entropy: the bound is not loose
    # by construction, it measures the model.
    blind, blind_error, _ = _mc_loss(ExactMarkovDenoiser(chain, length, use_context=False),
                                     tokens, cfg, 1)
    assert abs(blind - chain.marginal_entropy()) < 4 * blind_error + 0.002
    assert blind > per_token_entropy + 0.2
    # The AR factorisation of the same chain gives the entropy rate exactly.
    ar = per_sequence_loss(ExactMarkovPredictor(chain), tokens, None, ObjectiveConfig(kind="ar"),
                           4).per_sequence
    assert ar.mean().item() == pytest.approx(rate, abs=4 * ar.std().item() / math.sqrt(n))


def test_antithetic_timesteps_lower_the_variance_of_the_batch_loss() -> None:
    # Stratifying t removes the between-timestep part of the variance. The MaskGIT loss (w = 1)
    # varies strongly with t, so it shows the effect (6-9x here). The w(t) = 1/t ELBO's variance
    # is dominated by rare masked tokens at small t, within a timestep, and gains far less.
    chain, length, batch = MarkovChain(), 64, 32
    model = ExactMarkovDenoiser(chain, length)
    tokens = chain.sample(batch * 100, length, torch.Generator().manual_seed(3))

    def batch_mean_variance(timesteps: str) -> float:
        cfg = ObjectiveConfig(timesteps=timesteps, loss="maskgit")
        generator = torch.Generator().manual_seed(4)
        means = []
        for start in range(0, len(tokens), batch):
            rows = tokens[start : start + batch]
            noise = draw_noise(cfg, batch, length, 5, generator, 0.0)
            means.append(per_sequence_loss(model, rows, noise, cfg, 4).per_sequence.mean())
        return torch.stack(means).var().item()

    assert batch_mean_variance("antithetic") < batch_mean_variance("uniform") / 3
