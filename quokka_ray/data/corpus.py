"""Corpora. The default is the Python standard library's own source files: every machine with
Python has it, so the embedded default trains offline. It differs between Python builds, so its
manifest records the Python version and a digest of the bytes read."""

from __future__ import annotations

import hashlib
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CorpusText:
    documents: list[str]
    description: dict[str, str]  # what was read, for the shard manifest and MLflow


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_texts() -> Iterator[str]:
    """The standard library's .py files, in sorted path order."""
    root = stdlib_root()
    for path in sorted(root.rglob("*.py")):
        # Tests and vendored packages are skipped: they are large, repetitive and vary by build.
        if any(part in ("test", "tests", "site-packages", "idlelib") for part in path.parts):
            continue
        try:
            yield path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def stdlib_description() -> dict[str, str]:
    return {"corpus": "python-stdlib", "python_version": sys.version.split()[0],
            "stdlib_path": str(stdlib_root())}


def stdlib_source(max_bytes: int) -> CorpusText:
    """The first `max_bytes` of the standard library's .py files, in sorted path order."""
    documents: list[str] = []
    digest = hashlib.sha256()
    total = 0
    for text in stdlib_texts():
        documents.append(text)
        digest.update(text.encode("utf-8"))
        total += len(text.encode("utf-8"))
        if total >= max_bytes:
            break
    if not documents:
        raise ValueError(f"no Python source files found under {stdlib_root()}")
    return CorpusText(documents, {**stdlib_description(), "documents": str(len(documents)),
                                  "bytes": str(total), "sha256": digest.hexdigest()})
