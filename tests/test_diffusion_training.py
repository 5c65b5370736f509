"""End to end at toy scale: masked DLM, uniform DLM and AR each learn the offline corpus."""

import pytest
import torch

from quokka_ray.data.corpus import stdlib_source
from quokka_ray.data.tokenizers import ByteTokenizer
from quokka_ray.diffusion import (
    ObjectiveConfig,
    draw_noise,
    get_schedule,
    per_sequence_loss,
    sample_dlm,
    validation_loss,
)
from quokka_ray.model import ModelConfig, Transformer

SEQ_LEN, BATCH, STEPS = 64, 16, 80
TOKENIZER = ByteTokenizer()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus() -> tuple[torch.Tensor, torch.Tensor]:
    text = "\n".join(stdlib_source(400_000).documents)
    ids = torch.tensor(TOKENIZER.encode(text), dtype=torch.long)
    split = int(0.9 * len(ids))
    train, held_out = ids[:split], ids[split:]
    windows = torch.arange(0, 32 * SEQ_LEN, SEQ_LEN)  # 32 fixed validation sequences
    return train, held_out[windows[:, None] + torch.arange(SEQ_LEN)]


def _train(cfg: ObjectiveConfig, train: torch.Tensor, val: torch.Tensor):
    torch.manual_seed(0)
    model_cfg = ModelConfig(vocab_size=TOKENIZER.vocab_size, n_layers=2, d_model=64, n_heads=4,
                            ffn_hidden=176, max_seq_len=SEQ_LEN, causal=cfg.kind == "ar",
                            time_embedding=cfg.needs_time_embedding)
    model = Transformer(model_cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    mask = TOKENIZER.mask_token_id

    def evaluate() -> float:
        return validation_loss(model, val, cfg, mask, seed=0, samples_per_sequence=2)

    before = evaluate()
    data_generator = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        offsets = torch.randint(0, len(train) - SEQ_LEN, (BATCH,), generator=data_generator)
        tokens = train[offsets[:, None] + torch.arange(SEQ_LEN)]
        noise_generator = torch.Generator().manual_seed(1000 + step)  # keyed by (seed, step)
        noise = draw_noise(cfg, BATCH, SEQ_LEN, TOKENIZER.vocab_size, noise_generator,
                           progress=step / STEPS)
        out = per_sequence_loss(model, tokens, noise, cfg, mask)
        optimizer.zero_grad(set_to_none=True)
        out.per_sequence.mean().backward()
        optimizer.step()
    return model, before, evaluate(), out


@pytest.mark.parametrize(
    "cfg",
    [
        ObjectiveConfig(kind="dlm", kernel="masked", timesteps="antithetic"),
        ObjectiveConfig(kind="dlm", kernel="uniform"),
        ObjectiveConfig(kind="ar"),
    ],
    ids=["masked_dlm", "uniform_dlm", "ar"],
)
def test_tiny_model_learns_the_corpus(cfg: ObjectiveConfig, corpus) -> None:
    train, val = corpus
    model, before, after, last = _train(cfg, train, val)
    # An untrained model predicts about uniformly: log(257) = 5.55 nats per token, twice that
    # for the uniform-kernel surrogate (corrupted and clean terms each about log 257).
    uniform_dlm = cfg.kind == "dlm" and cfg.kernel == "uniform"
    assert before == pytest.approx(11.1 if uniform_dlm else 5.55, rel=0.06)
    assert after < 0.75 * before, (before, after)
    if uniform_dlm:
        assert {"loss_clean", "loss_corrupted"} <= set(last.metrics)
    if cfg.kind == "dlm" and cfg.kernel == "masked":
        samples = sample_dlm(model, 4, SEQ_LEN, steps=16, mask_token_id=TOKENIZER.mask_token_id,
                             schedule=get_schedule(cfg.schedule),
                             generator=torch.Generator().manual_seed(0))
        assert samples.shape == (4, SEQ_LEN)
        assert not (samples == TOKENIZER.mask_token_id).any()
        TOKENIZER.decode(samples[0].tolist())  # bytes that decode (with replacements)
