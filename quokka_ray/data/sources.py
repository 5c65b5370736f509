"""Documents from a source, in the source's order, up to `max_corpus_bytes`: the offline
stdlib corpus, local text / JSONL / Parquet files or folders (read with `datasets`), or a
Hugging Face data set by name, config, split and revision (streamed)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from quokka_ray.data.config import DataConfig
from quokka_ray.data.corpus import CorpusText, stdlib_description, stdlib_texts

LOCAL_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class DocumentStream:
    """Iterate once over the source's documents; `description()` then says what was read
    (source, revision, documents, bytes and a digest of the text), for the manifest."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.documents = 0
        self.bytes = 0
        self._digest = hashlib.sha256()
        self._texts, self._description = _open(cfg)

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            data = text.encode("utf-8")
            self.documents += 1
            self.bytes += len(data)
            self._digest.update(data)
            yield text
            if self.bytes >= self.cfg.max_corpus_bytes:
                break
        if self.documents == 0:
            raise ValueError(f"data source {self.cfg.source}: no documents")

    def description(self) -> dict[str, str]:
        return {**self._description, "documents": str(self.documents), "bytes": str(self.bytes),
                "sha256": self._digest.hexdigest()}


def read_documents(cfg: DataConfig) -> CorpusText:
    """Every document at once (small corpora, tokenizer training)."""
    stream = DocumentStream(cfg)
    documents = list(stream)
    return CorpusText(documents, stream.description())


def _open(cfg: DataConfig) -> tuple[Iterable[str], dict[str, str]]:
    if cfg.source == "stdlib":
        return stdlib_texts(), stdlib_description()
    path = Path(cfg.source).expanduser()
    if path.exists():
        return _local(path, cfg)
    return _hub(cfg)


def _local(path: Path, cfg: DataConfig) -> tuple[Iterable[str], dict[str, str]]:
    import datasets

    datasets.disable_progress_bars()
    suffix = (path.suffix if path.is_file() else _folder_suffix(path)).lower()
    builder = LOCAL_BUILDERS.get(suffix)
    if builder is None:
        raise ValueError(f"data source {path}: expected a .txt, .jsonl or .parquet file or folder")
    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob(f"*{suffix}"))
    # Streaming reads the files in order without building an Arrow cache of the whole set.
    dataset = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
    return _texts(dataset, cfg), {"corpus": "local", "path": str(path.resolve()),
                                  "format": builder}


def _folder_suffix(path: Path) -> str:
    suffixes = {p.suffix for p in path.iterdir() if p.is_file()}
    for suffix in (".parquet", ".jsonl", ".json", ".txt"):
        if suffix in suffixes:
            return suffix
    return ""


def _hub(cfg: DataConfig) -> tuple[Iterable[str], dict[str, str]]:
    import datasets

    # Streaming reads only the bytes asked for, not the whole data set.
    dataset = datasets.load_dataset(cfg.source, cfg.source_config, split=cfg.source_split,
                                    revision=cfg.source_revision, streaming=True)
    description = {"corpus": "huggingface", "name": cfg.source,
                   "config": cfg.source_config or "", "split": cfg.source_split,
                   "revision": cfg.source_revision or "(default branch at preparation)"}
    return _texts(dataset, cfg), description


def _texts(rows, cfg: DataConfig) -> Iterator[str]:
    field = cfg.text_field
    for row in rows:
        if field not in row:
            raise ValueError(f"data source {cfg.source}: no field {field!r} "
                             f"(DataConfig.text_field; fields: {sorted(row)})")
        yield str(row[field])
