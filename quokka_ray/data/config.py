"""What a run trains on."""

from __future__ import annotations

from dataclasses import dataclass


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
    cache_dir: str = ".quokka_cache"
    """Where packed Parquet shards are written; resolved to an absolute path by `quokka run`."""

    def __post_init__(self) -> None:
        if self.seq_len < 8:
            raise ValueError(f"seq_len must be at least 8, got {self.seq_len}")
        if self.validation_sequences < 1:
            raise ValueError(f"validation_sequences must be >= 1, got {self.validation_sequences}")
        if self.max_corpus_bytes < 1:
            raise ValueError(f"max_corpus_bytes must be >= 1, got {self.max_corpus_bytes}")
