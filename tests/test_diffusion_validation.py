"""validation_loss: deterministic given the seed, independent of batching and of training mode."""

import pytest
import torch

from quokka_ray.diffusion import ObjectiveConfig, validation_loss
from quokka_ray.model import ModelConfig, Transformer

V, MASK = 13, 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**change) -> Transformer:
    torch.manual_seed(0)
    base = dict(vocab_size=V, n_layers=1, d_model=16, n_heads=1, ffn_hidden=32, max_seq_len=16,
                init_std=0.3)
    return Transformer(ModelConfig(**{**base, **change}))


TOKENS = torch.randint(0, MASK, (10, 16), generator=torch.Generator().manual_seed(5))
CASES = [
    (ObjectiveConfig(), {}),
    (ObjectiveConfig(kernel="uniform"), {"time_embedding": True}),
    (ObjectiveConfig(kind="ar"), {"causal": True}),
]


@pytest.mark.parametrize(("cfg", "model_change"), CASES, ids=["masked", "uniform", "ar"])
def test_deterministic_and_independent_of_batch_size(cfg, model_change) -> None:
    model = _model(**model_change)
    a = validation_loss(model, TOKENS, cfg, MASK, seed=3, samples_per_sequence=3, batch_size=7)
    b = validation_loss(model, TOKENS, cfg, MASK, seed=3, samples_per_sequence=3, batch_size=64)
    one = validation_loss(model, TOKENS, cfg, MASK, seed=3, samples_per_sequence=3, batch_size=1)
    assert a == pytest.approx(b, rel=1e-6) and a == pytest.approx(one, rel=1e-6)
    assert a == validation_loss(model, TOKENS, cfg, MASK, seed=3, samples_per_sequence=3,
                                batch_size=7)
    if cfg.kind == "dlm":
        c = validation_loss(model, TOKENS, cfg, MASK, seed=4, samples_per_sequence=3)
        assert c != pytest.approx(a, rel=1e-6)


def test_uses_the_uniform_t_elbo_whatever_the_training_options() -> None:
    model = _model()
    reference = validation_loss(model, TOKENS, ObjectiveConfig(), MASK, seed=1)
    for change in ({"timesteps": "curriculum"}, {"loss": "maskgit"}, {"timesteps": "antithetic"},
                   {"loss": "elbo_realized_masked"}):
        cfg = ObjectiveConfig(**change)
        assert validation_loss(model, TOKENS, cfg, MASK, seed=1) == pytest.approx(reference)
    other_schedule = validation_loss(model, TOKENS, ObjectiveConfig(schedule="cosine"), MASK, 1)
    assert other_schedule != pytest.approx(reference)


def test_restores_training_mode_and_needs_no_grad() -> None:
    model = _model().train()
    validation_loss(model, TOKENS, ObjectiveConfig(), MASK, seed=0)
    assert model.training
    model.eval()
    validation_loss(model, TOKENS, ObjectiveConfig(), MASK, seed=0)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_an_untrained_model_scores_about_log_vocab() -> None:
    # Near-uniform predictions (tiny init): the negative ELBO is about log V nats per token.
    model = _model(init_std=1e-4)
    loss = validation_loss(model, TOKENS, ObjectiveConfig(), MASK, seed=0, samples_per_sequence=64)
    assert loss == pytest.approx(torch.log(torch.tensor(float(V))).item(), rel=0.05)
