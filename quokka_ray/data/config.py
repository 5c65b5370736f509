"""What a run trains on."""

from __future__ import annotations

from dataclasses import dataclass

from quokka_ray.config import check_types, require


@dataclass(frozen=True)
class DataConfig:
    """The corpus, its tokenizer and how it is cut into training sequences."""

    source: str = "stdlib"
    """'stdlib' (the Python standard library's source, offline), a Hugging Face `datasets`
    name, or a local .txt / .jsonl / .parquet file or folder."""
    text_field: str = "text"
    """Column holding the text, for JSONL, Parquet and Hugging Face sources."""
    tokenizer: str = "byte"
    """'byte' (UTF-8 bytes plus a mask token, offline) or a Hugging Face tokenizer name."""
    seq_len: int = 128
    """Tokens per training sequence; documents are packed end to end."""
    max_corpus_bytes: int = 3_000_000
    """Bytes of text read from the source before tokenizing."""
    validation_sequences: int = 64
    """Held-out sequences (taken from the end of the corpus) for the validation loss."""
    unique_tokens: int | None = None
    """Unique-token budget U: train on only the first U tokens (whole sequences) of the
    training split, repeated epoch after epoch, reshuffled each epoch (data-constrained
    studies). None: the whole training split."""
    cache_dir: str = ".quokka_cache"
    """Where packed Parquet shards are written; resolved to an absolute path by `quokka run`."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self.seq_len >= 8, "DataConfig.seq_len", self.seq_len, "at least 8 tokens")
        require(self.validation_sequences >= 1, "DataConfig.validation_sequences",
                self.validation_sequences, "at least 1")
        require(self.max_corpus_bytes >= 1, "DataConfig.max_corpus_bytes",
                self.max_corpus_bytes, "at least 1 byte")
        if self.unique_tokens is not None:
            require(self.unique_tokens >= self.seq_len, "DataConfig.unique_tokens",
                    self.unique_tokens, "None or at least one sequence of tokens")
