"""ModelConfig validation: errors name the field."""

import pytest

from quokka_ray.model import ModelConfig

BASE = dict(vocab_size=257, n_layers=2, d_model=64, n_heads=4, ffn_hidden=176, max_seq_len=64)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"d_model": 66}, "n_heads"),  # 66 % 4 != 0: message names d_model and n_heads
        ({"d_model": 60, "n_heads": 4}, "n_heads"),  # head dim 15 is odd
        ({"n_layers": 0}, "n_layers"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"init_std": 0.0}, "init_std"),
        ({"norm_eps": -1e-6}, "norm_eps"),
        ({"attention_backend": "xformers"}, "attention_backend"),
        ({"max_seq_len": 2.5}, "max_seq_len"),
    ],
)
def test_invalid_config_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{**BASE, **change})


def test_valid_config_and_head_dim() -> None:
    cfg = ModelConfig(**BASE)
    assert cfg.head_dim == 16
    assert not cfg.causal and not cfg.time_embedding and cfg.attention_backend == "sdpa"
