"""What a run trains on."""

from __future__ import annotations

from dataclasses import dataclass

from quokka_ray.config import check_types, require


@dataclass(frozen=True)
class DataConfig:
    """The corpus, its tokenizer and how it is cut into training sequences."""

    source: str = "stdlib"
    """'stdlib' (the Python standard library's source, offline), a Hugging Face `datasets`
    name (streamed), or a local .txt / .jsonl / .parquet file or folder."""
    text_field: str = "text"
    """Column holding the text, for JSONL, Parquet and Hugging Face sources."""
    source_config: str | None = None
    """Hugging Face data set configuration (subset), e.g. 'sample-10BT'; None for the default."""
    source_split: str = "train"
    """Split read from a Hugging Face data set."""
    source_revision: str | None = None
    """Git revision (commit, tag or branch) of a Hugging Face data set; recorded in the manifest."""
    tokenizer: str = "byte"
    """'byte' (UTF-8 bytes plus a mask token, offline), a `tokenizer.json` path (a BPE from
    `quokka data train-tokenizer`) or a Hugging Face tokenizer name or folder (extra 'hf')."""
    seq_len: int = 128
    """Tokens per training sequence; documents are packed end to end, with separators."""
    max_corpus_bytes: int = 3_000_000
    """Bytes of text read from the source (in its order) before tokenizing."""
    validation_sequences: int = 64
    """Held-out sequences for the validation loss, packed from whole documents chosen by the
    hash of their text (the lowest hashes), so no validation document is ever trained on."""
    shard_tokens: int = 4_000_000
    """Training tokens per Parquet shard (about); each shard packs its own documents."""
    unique_tokens: int | None = None
    """Unique-token budget U: train on only the first U tokens (whole sequences) of the
    training sequences in their fixed order, repeated epoch after epoch, reshuffled each epoch
    (data-constrained studies). None: the whole training split."""
    cache_dir: str | None = None
    """Where packed shards are kept (a folder or any pyarrow filesystem URI, s3://, gs://).
    None: `<storage path>/data` under `quokka run` and `quokka data prepare`."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self.seq_len >= 8, "DataConfig.seq_len", self.seq_len, "at least 8 tokens")
        require(self.validation_sequences >= 1, "DataConfig.validation_sequences",
                self.validation_sequences, "at least 1")
        require(self.max_corpus_bytes >= 1, "DataConfig.max_corpus_bytes",
                self.max_corpus_bytes, "at least 1 byte")
        require(self.shard_tokens >= self.seq_len, "DataConfig.shard_tokens",
                self.shard_tokens, "at least one sequence of tokens")
        if self.unique_tokens is not None:
            require(self.unique_tokens >= self.seq_len, "DataConfig.unique_tokens",
                    self.unique_tokens, "None or at least one sequence of tokens")
