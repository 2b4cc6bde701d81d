"""Bounded reads off a socket, for the request/answer protocols the rig speaks itself (HTTP,
RTSP): never more than a limit, never past a deadline, and a read timeout is not an error."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Callable


def read_until(sock: socket.socket | ssl.SSLSocket, deadline: float, done: Callable[[bytes], bool], limit: int,
               data: bytes = b"") -> bytes:
    """``data`` and what ``sock`` sends after it, until ``done(bytes so far)``, ``limit`` bytes, the
    peer closing, or ``deadline`` (``time.monotonic()``). Raises only what the socket raises
    other than a timeout."""
    while not done(data) and len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(65536, limit - len(data)))
        except (TimeoutError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def head_complete(data: bytes) -> bool:
    """An HTTP or RTSP response head has arrived (the blank line after the headers)."""
    return b"\r\n\r\n" in data


def head_headers(head: bytes, max_lines: int = 100, max_value: int = 8192) -> dict[str, list[str]]:
    """The headers of an HTTP or RTSP response head (status line first, body ignored): lower-case
    names, every value in order (a server may send several ``WWW-Authenticate``), at most
    ``max_lines`` header lines and ``max_value`` characters a value: a hostile head stays small."""
    out: dict[str, list[str]] = {}
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:max_lines + 1]:
        name, sep, value = line.partition(b":")
        if sep:
            out.setdefault(name.strip().lower().decode("latin-1"), []).append(value.strip().decode("latin-1")[:max_value])
    return out


def content_length(headers: dict[str, list[str]]) -> int | None:
    """The first Content-Length when it is a plain non-negative number (else ``None``: read to the bound)."""
    value = (headers.get("content-length") or [""])[0].strip()
    return int(value) if value.isdigit() and len(value) <= 12 else None
