"""Tokenizers: a byte-level one that needs no download, a BPE trained here with `tokenizers`
(a `tokenizer.json` path), and any Hugging Face tokenizer by name or path (`transformers`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

#: The optional dependency that Hugging Face tokenizers need (pyproject's extras).
HF_EXTRA = "pip install 'quokka-ray[hf]'"


class Tokenizer(Protocol):
    vocab_size: int  # including the mask token
    mask_token_id: int
    bytes_per_token: float | None  # known only for byte-level tokenizers (bits per byte)

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...

    def decode(self, ids: list[int]) -> str: ...


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id (uint16 for bytes and for GPT-2)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


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

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]

    def decode(self, ids: list[int]) -> str:
        # Mask tokens (and anything out of byte range) show as '_' so partial samples stay readable.
        return bytes(i if 0 <= i < 256 else ord("_") for i in ids).decode("utf-8", errors="replace")


class BpeFileTokenizer:
    """A `tokenizers` tokenizer saved as `tokenizer.json` (`quokka data train-tokenizer`)."""

    bytes_per_token: float | None = None

    def __init__(self, path: str, json_text: str | None = None):
        try:
            from tokenizers import Tokenizer as HfTokenizer
        except ImportError as err:
            raise ValueError(f"tokenizer {path!r} needs the `tokenizers` package: {HF_EXTRA}") from err
        self.path = str(path)
        # The file's text, when given, is used instead of the file (Ray tasks on other nodes).
        self._tokenizer = (HfTokenizer.from_str(json_text) if json_text is not None
                           else HfTokenizer.from_file(self.path))
        self.mask_token_id = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self.vocab_size = self.mask_token_id + 1

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        encoded = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encoded]

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode([i for i in ids if i != self.mask_token_id])


class HuggingFaceTokenizer:
    """Any `transformers` tokenizer by name or path; a mask token is appended to its vocabulary."""

    bytes_per_token: float | None = None

    def __init__(self, name_or_path: str):
        try:
            from transformers import AutoTokenizer
        except ImportError as err:  # optional: the offline default needs none
            raise ValueError(
                f"tokenizer {name_or_path!r} needs the `transformers` package: {HF_EXTRA}"
            ) from err
        self._tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.mask_token_id = len(self._tokenizer)
        self.vocab_size = self.mask_token_id + 1

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        ids = self._tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [np.asarray(i, dtype=np.int64) for i in ids]

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode([i for i in ids if i != self.mask_token_id])


def get_tokenizer(name: str, json_text: str | None = None) -> Tokenizer:
    """'byte' is the offline default; a path to a `tokenizer.json` file is a `tokenizers`
    tokenizer (`json_text`: that file's text, read elsewhere); anything else is a Hugging Face
    tokenizer name or folder (`transformers`)."""
    if name == "byte":
        return ByteTokenizer()
    if json_text is not None:
        return BpeFileTokenizer(name, json_text)
    if name.endswith(".json"):
        if not Path(name).expanduser().is_file():
            raise ValueError(f"DataConfig.tokenizer: {name!r}: no such file")
        return BpeFileTokenizer(str(Path(name).expanduser()))
    return HuggingFaceTokenizer(name)
