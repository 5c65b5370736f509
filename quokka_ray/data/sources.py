"""Read documents from a source: the offline stdlib corpus, local files or Hugging Face datasets."""

from __future__ import annotations

import hashlib
from pathlib import Path

from quokka_ray.data.config import DataConfig
from quokka_ray.data.corpus import CorpusText, stdlib_source


def read_documents(cfg: DataConfig) -> CorpusText:
    if cfg.source == "stdlib":
        return stdlib_source(cfg.max_corpus_bytes)
    path = Path(cfg.source).expanduser()
    if path.exists():
        return _read_local(path, cfg)
    return _read_hub(cfg)


def _read_local(path: Path, cfg: DataConfig) -> CorpusText:
    import datasets

    suffix = (path.suffix if path.is_file() else _folder_suffix(path)).lower()
    builder = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(suffix)
    if builder is None:
        raise ValueError(f"data source {path}: expected a .txt, .jsonl or .parquet file or folder")
    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob(f"*{suffix}"))
    dataset = datasets.load_dataset(builder, data_files=files, split="train")
    return _take(iter(dataset), cfg, {"corpus": "local", "path": str(path.resolve())})


def _folder_suffix(path: Path) -> str:
    suffixes = {p.suffix for p in path.iterdir() if p.is_file()}
    for suffix in (".parquet", ".jsonl", ".json", ".txt"):
        if suffix in suffixes:
            return suffix
    return ""


def _read_hub(cfg: DataConfig) -> CorpusText:
    import datasets

    # Streaming reads only the bytes asked for, not the whole data set.
    dataset = datasets.load_dataset(cfg.source, split="train", streaming=True)
    return _take(iter(dataset), cfg, {"corpus": "huggingface", "name": cfg.source})


def _take(rows, cfg: DataConfig, description: dict[str, str]) -> CorpusText:
    documents: list[str] = []
    digest = hashlib.sha256()
    total = 0
    for row in rows:
        if cfg.text_field not in row:
            raise ValueError(
                f"data source {cfg.source}: no field {cfg.text_field!r} (fields: {sorted(row)})"
            )
        text = str(row[cfg.text_field])
        documents.append(text)
        digest.update(text.encode("utf-8"))
        total += len(text.encode("utf-8"))
        if total >= cfg.max_corpus_bytes:
            break
    if not documents:
        raise ValueError(f"data source {cfg.source}: no documents")
    return CorpusText(
        documents, {**description, "documents": str(len(documents)), "bytes": str(total),
                    "sha256": digest.hexdigest()}
    )
