"""Whether a server answers at all, asked in seconds before anything starts: the MLflow and
Ray clients would otherwise retry for minutes, after other things had started."""

from __future__ import annotations

import socket
from urllib.parse import urlparse


def unreachable_reason(url: str, default_port: int | None = None,
                       timeout_s: float = 5.0) -> str | None:
    """None if a TCP connection to the URL's host and port opens, else why not. A URL without
    host or port (and no default) is left to its client."""
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    port = parsed.port or default_port
    if parsed.hostname is None or port is None:
        return None
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None
