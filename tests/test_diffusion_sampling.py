"""Samplers: the DLM sampler follows the schedule and leaves no mask; the AR sampler is causal."""

import pytest
import torch
from torch import nn

from quokka_ray.diffusion import get_schedule, sample_ar, sample_dlm
from quokka_ray.model import ModelConfig, Transformer

V, MASK = 9, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class MaskLover(nn.Module):
    """Puts its largest logit on the mask token and records the masked fraction it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.masked_fractions: list[float] = []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.masked_fractions.append((tokens == MASK).float().mean().item())
        logits = torch.zeros(*tokens.shape, V) + self.scale
        logits[..., MASK] = 10.0
        logits[..., 3] = 5.0  # the best real token
        return logits


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_reveals_follow_the_schedule_and_no_mask_is_left(schedule_name: str) -> None:
    model = MaskLover()
    out = sample_dlm(model, 64, 64, steps=4, mask_token_id=MASK, schedule=schedule_name,
                     generator=_gen())
    assert out.shape == (64, 64) and not (out == MASK).any()
    assert out.min() >= 0 and out.max() < V
    schedule = get_schedule(schedule_name)
    expected = [1 - schedule.alpha(torch.tensor(t)).item() for t in (1.0, 0.75, 0.5, 0.25)]
    assert model.masked_fractions == pytest.approx(expected, abs=0.03)


def test_greedy_never_picks_the_mask_and_one_step_unmasks_all() -> None:
    out = sample_dlm(MaskLover(), 2, 10, steps=1, mask_token_id=MASK, schedule="linear",
                     generator=_gen(), temperature=0.0)
    assert torch.equal(out, torch.full((2, 10), 3))


def test_prompt_is_kept_and_sampling_is_reproducible() -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=V, n_layers=1, d_model=16, n_heads=1,
                                    ffn_hidden=32, max_seq_len=12))
    prompt = torch.tensor([1, 2, 3])
    a = sample_dlm(model, 3, 12, 6, MASK, get_schedule("poly2"), _gen(1), prompt=prompt)
    b = sample_dlm(model, 3, 12, 6, MASK, get_schedule("poly2"), _gen(1), prompt=prompt)
    assert torch.equal(a, b) and torch.equal(a[:, :3], prompt.expand(3, -1))
    assert not (a == MASK).any()


def test_bad_arguments() -> None:
    timed = Transformer(ModelConfig(vocab_size=V, n_layers=1, d_model=16, n_heads=1,
                                    ffn_hidden=32, max_seq_len=8, time_embedding=True))
    with pytest.raises(ValueError, match="time embedding"):
        sample_dlm(timed, 1, 8, 2, MASK, "linear", _gen())
    with pytest.raises(ValueError, match="steps"):
        sample_dlm(MaskLover(), 1, 8, 0, MASK, "linear", _gen())
    with pytest.raises(ValueError, match="temperature"):
        sample_dlm(MaskLover(), 1, 8, 2, MASK, "linear", _gen(), temperature=-1.0)


class Successor(nn.Module):
    """A causal 'model' whose next token is (current + 1) mod (V - 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = ModelConfig(vocab_size=V, n_layers=1, d_model=2, n_heads=1, ffn_hidden=2,
                               max_seq_len=32, causal=True)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return 20.0 * nn.functional.one_hot((tokens + 1) % (V - 1), V).float()


def test_sample_ar_follows_the_model() -> None:
    out = sample_ar(Successor(), 4, 10, _gen(), prompt=torch.tensor([[2], [5], [0], [7]]))
    expected = (torch.tensor([2, 5, 0, 7])[:, None] + torch.arange(10)) % (V - 1)
    assert torch.equal(out, expected)
    free = sample_ar(Successor(), 3, 6, _gen(), temperature=0.0)
    assert free.shape == (3, 6) and torch.equal(free[:, 1:], (free[:, :-1] + 1) % (V - 1))
    assert free[:, 0].max() < V - 1
