"""A byte-level BPE trained locally with `tokenizers` on a source's documents (no download)."""

from __future__ import annotations

from pathlib import Path

from quokka_ray.data.config import DataConfig
from quokka_ray.data.sources import DocumentStream
from quokka_ray.data.tokenizers import HF_EXTRA


def train_bpe(cfg: DataConfig, vocab_size: int, out: Path) -> dict[str, str]:
    """Train on the first `cfg.max_corpus_bytes` of `cfg.source`; write `out` (tokenizer.json).
    The mask token is not part of it: quokka appends one after the vocabulary."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as err:
        raise ValueError(f"training a tokenizer needs the `tokenizers` package: {HF_EXTRA}") from err
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    stream = DocumentStream(cfg)
    tokenizer.train_from_iterator(iter(stream), trainer=trainer)
    tokenizer.save(str(out))
    return {**stream.description(), "vocab_size": str(tokenizer.get_vocab_size())}
