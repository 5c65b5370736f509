"""Tokenizers: a byte-level one that needs no download, and a wrapper for Hugging Face ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Tokenizer(Protocol):
    vocab_size: int  # including the mask token
    mask_token_id: int
    bytes_per_token: float | None  # known only for byte-level tokenizers (bits per byte)

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes 0..255 as tokens, plus a mask token (id 256) for masked diffusion.

    AR models use the same vocabulary so that DLM and AR runs share one parameter count.
    """

    vocab_size: int = 257
    mask_token_id: int = 256
    bytes_per_token: float | None = 1.0

    def encode(self, text: str | bytes) -> list[int]:
        data = text.encode("utf-8") if isinstance(text, str) else text
        return list(data)

    def encode_array(self, text: str) -> np.ndarray:
        """The same ids as `encode`, without a Python int per byte."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids: list[int]) -> str:
        # Mask tokens (and anything out of byte range) show as '_' so partial samples stay readable.
        return bytes(i if 0 <= i < 256 else ord("_") for i in ids).decode("utf-8", errors="replace")


class HuggingFaceTokenizer:
    """Any `transformers` tokenizer by name or path; a mask token is appended to its vocabulary."""

    bytes_per_token: float | None = None

    def __init__(self, name_or_path: str):
        try:
            from transformers import AutoTokenizer
        except ImportError as err:  # transformers is optional: the offline default needs none
            raise ValueError(
                f"tokenizer {name_or_path!r} needs the `transformers` package: pip install transformers"
            ) from err
        self._tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.mask_token_id = len(self._tokenizer)
        self.vocab_size = self.mask_token_id + 1

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode([i for i in ids if i != self.mask_token_id])


def get_tokenizer(name: str) -> Tokenizer:
    """'byte' is the offline default; anything else is a Hugging Face tokenizer name or path."""
    if name == "byte":
        return ByteTokenizer()
    return HuggingFaceTokenizer(name)
