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
