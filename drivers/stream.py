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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from drivers.transcript import escape_bytes

HEAD_LIMIT = 4096


@dataclass
class PullResult:
    """One bounded pull: bytes read, how long, the status line (escaped), or why it failed."""

    url: str
    bytes: int
    seconds: float
    status_line: str | None
    error: str | None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return dict(self.__dict__)


def _connect(url: str, client_cert: tuple[Path, Path] | None, connect_timeout: float) -> tuple[socket.socket | ssl.SSLSocket, str]:
    """Connected (and, for https, TLS-wrapped) socket with the GET sent; raises OSError/ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot pull {parts.scheme}:// streams (http and https only)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock: socket.socket | ssl.SSLSocket = socket.create_connection((parts.hostname, port), timeout=connect_timeout)
    except OSError as exc:
        raise OSError(f"connect to {parts.hostname}:{port}: {exc.strerror or exc}") from None
    try:
        if parts.scheme == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            if client_cert is not None:
                ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
            sock = ctx.wrap_socket(sock)
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: privrig\r\nConnection: close\r\n\r\n".encode())
    except BaseException:
        sock.close()
        raise
    return sock, url


def _chunks(sock: socket.socket | ssl.SSLSocket, seconds: float) -> Iterator[bytes]:
    """What the server sends, until it closes or ``seconds`` pass (read timeouts are not errors)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(min(left, 1.0))
        try:
            data = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            continue
        if not data:
            return
        yield data


def _error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return reason if isinstance(exc, (ValueError,)) or str(reason).startswith("connect to") else f"{type(exc).__name__}: {reason}"


def pull(url: str, seconds: float, max_bytes: int = 64 << 20, client_cert: tuple[Path, Path] | None = None,
         connect_timeout: float = 5.0) -> PullResult:
    """GET ``url`` and read for at most ``seconds`` or ``max_bytes``; never raises for network errors."""
    start = time.monotonic()
    got, head = 0, b""
    try:
        sock, _ = _connect(url, client_cert, connect_timeout)
    except (OSError, ValueError, ssl.SSLError) as exc:
        return PullResult(url, 0, 0.0, None, _error(exc))
    try:
        for data in _chunks(sock, seconds):
            if len(head) < HEAD_LIMIT:
                head += data[: HEAD_LIMIT - len(head)]
            got += len(data)
            if got >= max_bytes:
                break
        status = escape_bytes(head.split(b"\r\n", 1)[0][:200]) if head else None
        return PullResult(url, got, round(time.monotonic() - start, 3), status, None)
    except (OSError, ssl.SSLError) as exc:
        return PullResult(url, got, round(time.monotonic() - start, 3), None, _error(exc))
    finally:
        sock.close()


@dataclass
class FrameGrab:
    """Frames decoded from a stream, with when each arrived (seconds from the request)."""

    url: str
    frames: list = field(default_factory=list)  # numpy BGR images
    times: list[float] = field(default_factory=list)
    bytes: int = 0
    undecodable: int = 0
    error: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"url": self.url, "frames": len(self.frames), "bytes": self.bytes, "undecodable": self.undecodable, "error": self.error,
                "first_s": self.times[0] if self.times else None, "last_s": self.times[-1] if self.times else None}


#: a JPEG larger than this in an MJPEG stream is not a frame (the buffer is dropped)
FRAME_LIMIT = 8 << 20


def grab_frames(url: str, seconds: float, max_frames: int = 50, client_cert: tuple[Path, Path] | None = None,
                connect_timeout: float = 5.0) -> FrameGrab:
    """Decode JPEG frames from an MJPEG (multipart) HTTP(S) stream for at most ``seconds``.

    Frames are found by their SOI/EOI markers, so any multipart boundary works; each is
    decoded by OpenCV. A stream that will not open gives ``error``; one that opens and
    sends nothing gives no frames and no error (a camera that stops sending).
    """
    import cv2
    import numpy as np

    grab = FrameGrab(url)
    start = time.monotonic()
    try:
        sock, _ = _connect(url, client_cert, connect_timeout)
    except (OSError, ValueError, ssl.SSLError) as exc:
        grab.error = _error(exc)
        return grab
    buf = bytearray()
    try:
        for data in _chunks(sock, seconds):
            grab.bytes += len(data)
            buf += data
            while True:
                soi = buf.find(b"\xff\xd8\xff")
                if soi < 0:
                    del buf[:-2]
                    break
                eoi = buf.find(b"\xff\xd9", soi + 3)
                if eoi < 0:
                    del buf[:soi]
                    if len(buf) > FRAME_LIMIT:
                        buf.clear()
                    break
                img = cv2.imdecode(np.frombuffer(bytes(buf[soi:eoi + 2]), dtype=np.uint8), cv2.IMREAD_COLOR)
                del buf[:eoi + 2]
                if img is None:
                    grab.undecodable += 1
                    continue
                grab.frames.append(img)
                grab.times.append(round(time.monotonic() - start, 3))
                if len(grab.frames) >= max_frames:
                    return grab
    except (OSError, ssl.SSLError) as exc:
        grab.error = _error(exc)
    finally:
        sock.close()
    return grab
