"""Pull a device's HTTP(S) stream as a client would, bounded in time and bytes.

Used to make a camera send its media while the rig captures (channel-encryption) and,
later, to grab frames. The request is a plain ``GET`` with ``Connection: close``;
for HTTPS the rig presents the configured client certificate, if any, and does not
verify the server (the active TLS check judges the server separately).
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from drivers.transcript import escape_bytes

HEAD_LIMIT = 4096


@dataclass
class PullResult:
    url: str
    bytes: int
    seconds: float
    status_line: str | None
    error: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def pull(url: str, seconds: float, max_bytes: int = 64 << 20, client_cert: tuple[Path, Path] | None = None,
         connect_timeout: float = 5.0) -> PullResult:
    """GET ``url`` and read for at most ``seconds`` or ``max_bytes``; never raises for network errors."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return PullResult(url, 0, 0.0, None, f"cannot pull {parts.scheme}:// streams (http and https only)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    got, head = 0, b""
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=connect_timeout)
    except OSError as exc:
        return PullResult(url, 0, 0.0, None, f"connect to {parts.hostname}:{port}: {exc.strerror or exc}")
    try:
        if parts.scheme == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            if client_cert is not None:
                ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
            sock = ctx.wrap_socket(sock)
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: privrig\r\nConnection: close\r\n\r\n".encode())
        deadline = start + seconds
        while got < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(min(left, 1.0))
            try:
                data = sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            if not data:
                break
            if len(head) < HEAD_LIMIT:
                head += data[: HEAD_LIMIT - len(head)]
            got += len(data)
        status = escape_bytes(head.split(b"\r\n", 1)[0][:200]) if head else None
        return PullResult(url, got, round(time.monotonic() - start, 3), status, None)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        return PullResult(url, got, round(time.monotonic() - start, 3), None, f"{type(exc).__name__}: {reason}")
    finally:
        sock.close()
