"""Where shards live: a local folder or any pyarrow filesystem URI (s3://, gs://)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs


def open_root(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a folder or URI."""
    if "://" in root:
        return pafs.FileSystem.from_uri(root)
    return pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())


def join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def read_json(fs: pafs.FileSystem, path: str) -> dict | None:
    try:
        with fs.open_input_stream(path) as stream:
            return json.loads(stream.read().decode("utf-8"))
    except (FileNotFoundError, OSError) as err:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        raise err


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(data)
