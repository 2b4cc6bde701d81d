"""Pull a device's stream as a client would, and grab decoded frames from it, bounded in
time, bytes and frames.

``pull`` makes a camera send its media while the rig captures (channel-encryption): a
plain ``GET`` with ``Connection: close``; for HTTPS the rig presents the configured client
certificate, if any, and does not verify the server (the active TLS check judges the
server separately).

``grab_frames`` decodes frames for the camera scenarios from every kind of output a
device or a bench has: MJPEG over HTTP(S) (read here, frames found by their JPEG markers),
RTSP and RTSPS (OpenCV's FFmpeg backend, RTP interleaved over the RTSP connection), and a
local video device such as a USB observation camera (``device:///dev/video0``, OpenCV's
V4L2 backend).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from drivers import httpauth
from drivers import rtsp as rtsp_client
from drivers.httpauth import Credentials
from drivers.tlsprobe import every_version
from drivers.transcript import escape_bytes
from drivers.wire import head_complete, head_headers, read_until

HEAD_LIMIT = 4096


@dataclass
class PullResult:
    """One bounded pull: bytes read, how long, the status line (escaped) and code, where the rig's
    end of the connection was (``local``, ``ip:port``), or why it failed."""

    url: str
    bytes: int
    seconds: float
    status_line: str | None
    error: str | None
    status: int | None = None  # the HTTP status code; for RTSP, 200 once frames were decoded
    local: str | None = None
    frames: int = 0  # RTSP: frames decoded
    auth: str | None = None  # the scheme the rig answered the stream's challenge with ("Digest SHA-256")

    @property
    def delivered(self) -> bool:
        """The stream answered 2xx and sent media (bytes over HTTP, decoded frames over RTSP)."""
        return self.error is None and self.status is not None and 200 <= self.status < 300 and (self.bytes > 0 or self.frames > 0)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {**self.__dict__, "delivered": self.delivered}


def http_status(head: bytes) -> tuple[int | None, str]:
    """The status code and the escaped status line of an HTTP response head (``None``: not HTTP)."""
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0][:200]
    m = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", line)
    return (int(m.group(1)) if m else None), escape_bytes(line)


class StreamUnavailable(OSError):
    """The stream cannot be opened: an unsupported scheme, nothing answers, or it refused the
    request (message says which; ``status`` is the protocol status when there was one)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0])


def _connect(url: str, client_cert: tuple[Path, Path] | None, connect_timeout: float,
             authorization: str | None = None) -> tuple[socket.socket | ssl.SSLSocket, str]:
    """Connected (and, for https, TLS-wrapped) socket with the GET sent; raises OSError (StreamUnavailable for our own reasons)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StreamUnavailable(f"cannot pull {parts.scheme}:// streams (http, https, rtsp and rtsps only)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = _request_target(url)
    try:
        sock: socket.socket | ssl.SSLSocket = socket.create_connection((parts.hostname, port), timeout=connect_timeout)
    except OSError as exc:
        raise StreamUnavailable(f"connect to {parts.hostname}:{port}: {exc.strerror or exc}") from None
    try:
        if parts.scheme == "https":
            sock = _client_context(client_cert).wrap_socket(sock)
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        extra = f"Authorization: {authorization}\r\n" if authorization else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: privrig\r\n{extra}Connection: close\r\n\r\n".encode())
    except BaseException:
        sock.close()
        raise
    return sock, url


def _request_target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _client_context(client_cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """The TLS client of a stream pull: no verification (the TLS check judges the server), every
    version and suite the local OpenSSL still has (a camera that speaks only TLS 1.0 is still
    grabbed), and the configured client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    every_version(ctx)
    if client_cert is not None:
        ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    return ctx


def _head(sock: socket.socket | ssl.SSLSocket, timeout: float) -> bytes:
    """The response head (bounded by HEAD_LIMIT and ``timeout``) and whatever body came with it."""
    return read_until(sock, time.monotonic() + timeout, head_complete, HEAD_LIMIT)


def _challenges_of(head: bytes) -> list[httpauth.Challenge]:
    return httpauth.challenges(*head_headers(head).get("www-authenticate", []))


def _open(url: str, client_cert: tuple[Path, Path] | None, connect_timeout: float,
          auth: Credentials | None) -> tuple[socket.socket | ssl.SSLSocket, bytes, str | None]:
    """The stream's connection with the GET sent, the bytes already read from it, and the scheme
    the rig answered a challenge with. With ``auth``, a 401 is answered once (Basic or the
    strongest Digest offered) on a fresh connection; without it, or when the server asks for
    nothing the rig can answer, the 401 is handed on for the caller to report."""
    sock, _ = _connect(url, client_cert, connect_timeout)
    if auth is None:
        return sock, b"", None
    try:
        head = _head(sock, connect_timeout)
    except BaseException:
        sock.close()
        raise
    code, _ = http_status(head) if head else (None, "")
    chosen = httpauth.choose(_challenges_of(head)) if code == 401 else None
    if chosen is None:
        return sock, head, None
    sock.close()
    authorization = httpauth.authorization(chosen, auth, "GET", _request_target(url))
    sock, _ = _connect(url, client_cert, connect_timeout, authorization)
    return sock, b"", chosen.label()


def _chunks(sock: socket.socket | ssl.SSLSocket, seconds: float, first: bytes = b"") -> Iterator[bytes]:
    """What the server sends (``first``: what was already read), until it closes or ``seconds``
    pass (read timeouts are not errors)."""
    if first:
        yield first
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
    """One line for a failed pull: our own message, or the exception's type and reason."""
    if isinstance(exc, StreamUnavailable):
        return str(exc)
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {reason}"


def pull(url: str, seconds: float, max_bytes: int = 64 << 20, client_cert: tuple[Path, Path] | None = None,
         connect_timeout: float = 5.0, auth: Credentials | None = None) -> PullResult:
    """Play ``url`` as a client for at most ``seconds``: HTTP(S) ``GET`` read up to ``max_bytes``,
    or an RTSP(S) session whose frames are decoded and dropped; ``auth`` answers a Basic or
    Digest challenge. Never raises for network errors."""
    start = time.monotonic()
    if urlsplit(url).scheme in ("rtsp", "rtsps"):
        g = _grab_opencv(url, seconds, max_frames=1 << 30, connect_timeout=connect_timeout, keep=False, auth=auth)
        error = g.error or (None if g.decoded else "the RTSP session started but no frame was decoded")
        return PullResult(url, 0, round(time.monotonic() - start, 3), None if g.error else f"RTSP session: {g.decoded} frames decoded", error,
                          200 if g.decoded and not g.error else g.status, frames=g.decoded, auth=g.auth)
    got, head = 0, b""
    try:
        sock, first, scheme = _open(url, client_cert, connect_timeout, auth)
    except (OSError, ssl.SSLError) as exc:
        return PullResult(url, 0, 0.0, None, _error(exc))
    try:
        local = "%s:%d" % sock.getsockname()[:2]
    except OSError:
        local = None
    try:
        for data in _chunks(sock, seconds, first):
            if len(head) < HEAD_LIMIT:
                head += data[: HEAD_LIMIT - len(head)]
            got += len(data)
            if got >= max_bytes:
                break
        code, line = http_status(head) if head else (None, None)
        if code is not None and not head_complete(head):  # the head never ended: no answer, whatever its first line says
            return PullResult(url, got, round(time.monotonic() - start, 3), None,
                              f"the response head did not end within {HEAD_LIMIT >> 10} KiB or {seconds:g} s: not an HTTP answer", None, local, auth=scheme)
        error = None if code is not None and 200 <= code < 300 else \
            (f"the stream answered {line}" if code is not None else "no HTTP answer" if not head else f"not an HTTP answer: {escape_bytes(head[:60])}")
        return PullResult(url, got, round(time.monotonic() - start, 3), line, error, code, local, auth=scheme)
    except (OSError, ssl.SSLError) as exc:
        return PullResult(url, got, round(time.monotonic() - start, 3), None, _error(exc), None, local, auth=scheme)
    finally:
        sock.close()


@dataclass
class FrameGrab:
    """Frames decoded from a stream, with when each arrived (seconds from the request)."""

    url: str
    frames: list = field(default_factory=list)  # numpy BGR images
    times: list[float] = field(default_factory=list)
    bytes: int = 0  # bytes read off the wire (MJPEG; FFmpeg and V4L2 do not say)
    decoded: int = 0  # frames decoded, kept or not
    undecodable: int = 0
    error: str | None = None
    status: int | None = None  # the HTTP status of an MJPEG stream; RTSP: DESCRIBE's, when it was asked
    auth: str | None = None  # the scheme the rig answered the stream's challenge with ("Digest SHA-256")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"url": self.url, "frames": len(self.frames), "bytes": self.bytes, "undecodable": self.undecodable, "error": self.error,
                "status": self.status, "auth": self.auth, "first_s": self.times[0] if self.times else None, "last_s": self.times[-1] if self.times else None}


#: a JPEG larger than this in an MJPEG stream is not a frame (the buffer is dropped)
FRAME_LIMIT = 8 << 20


#: URL schemes ``grab_frames`` reads
GRAB_SCHEMES = ("http", "https", "rtsp", "rtsps", "device")


def grab_frames(url: str, seconds: float, max_frames: int = 50, client_cert: tuple[Path, Path] | None = None,
                connect_timeout: float = 5.0, auth: Credentials | None = None) -> FrameGrab:
    """Decoded frames from ``url`` for at most ``seconds`` (plus ``connect_timeout`` to open).

    ``http``/``https``: MJPEG (multipart), frames found by their SOI/EOI markers so any
    boundary works; ``rtsp``/``rtsps``: any codec FFmpeg decodes; ``device://PATH``: a
    local V4L2 video device. Never raises for a stream's failures: a stream that will not
    open, or answers other than 2xx (a 401, a 503), gives ``error`` with the reason and
    ``status``; one that answered 2xx and then sends nothing gives no frames and no error
    (a camera that stops sending). ``auth`` answers the stream's Basic or Digest challenge
    (:attr:`FrameGrab.auth` says which); the password never appears in ``url``, ``error`` or
    anything else the grab returns.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("rtsp", "rtsps", "device"):
        return _grab_opencv(url, seconds, max_frames, connect_timeout, auth=auth)
    return _grab_mjpeg(url, seconds, max_frames, client_cert, connect_timeout, auth)


def _grab_mjpeg(url: str, seconds: float, max_frames: int, client_cert: tuple[Path, Path] | None, connect_timeout: float,
                auth: Credentials | None = None) -> FrameGrab:
    """MJPEG over HTTP(S): see :func:`grab_frames`."""
    import cv2
    import numpy as np

    grab = FrameGrab(url)
    start = time.monotonic()
    try:
        sock, first, grab.auth = _open(url, client_cert, connect_timeout, auth)
    except (OSError, ssl.SSLError) as exc:
        grab.error = _error(exc)
        return grab
    buf = bytearray()
    head_done = False
    try:
        for data in _chunks(sock, seconds, first):
            grab.bytes += len(data)
            buf += data
            if not head_done:  # the response head first: a 401 or 503 page is never "no frames"
                end = buf.find(b"\r\n\r\n")
                if end < 0 and len(buf) < HEAD_LIMIT:
                    continue
                if end < 0:  # endless headers, a 1 GB header line: the server never answered
                    grab.error = f"the response head did not end within {HEAD_LIMIT >> 10} KiB: not an HTTP answer"
                    return grab
                grab.status, line = http_status(bytes(buf[:HEAD_LIMIT]))
                if grab.status is None or not 200 <= grab.status < 300:
                    grab.error = f"the stream answered {line}" if grab.status is not None else f"not an HTTP answer: {escape_bytes(bytes(buf[:60]))}"
                    if grab.status == 401:
                        grab.error += _auth_hint(bytes(buf[:HEAD_LIMIT]), auth, grab.auth)
                    return grab
                head_done = True
                del buf[: end + 4 if end >= 0 else 0]
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
                grab.decoded += 1
                grab.frames.append(img)
                grab.times.append(round(time.monotonic() - start, 3))
                if len(grab.frames) >= max_frames:
                    return grab
    except (OSError, ssl.SSLError) as exc:
        grab.error = _error(exc)
    finally:
        sock.close()
    if not head_done and grab.error is None:
        grab.error = f"no HTTP answer within {seconds:g} s" if not buf else f"no complete HTTP response head within {seconds:g} s"
    return grab


def _auth_hint(head: bytes, auth: Credentials | None, answered: str | None) -> str:
    """What a 401 means for the technician: no credentials configured, a wrong password, or a
    challenge the rig cannot answer."""
    offered = ", ".join(c.label() for c in _challenges_of(head)) or "no challenge"
    if answered:
        return f" to {answered} as user {auth.user!r}: wrong user or password (camera.streams[].auth)" if auth else ""
    if auth is None:
        return f" ({offered}): the stream wants credentials; give them in auth: {{user, password_env}}"
    return f" ({offered}): the rig cannot answer this challenge"


#: FFmpeg's RTSP client: RTP interleaved on the RTSP connection (no UDP ports to open on the
#: bench, nothing lost to a firewall); quiet, so device-supplied text never reaches the terminal
_FFMPEG_ENV = {"OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp", "OPENCV_FFMPEG_LOGLEVEL": "-8", "OPENCV_LOG_LEVEL": "ERROR"}
_env_lock = threading.Lock()

#: a decoded frame larger than this (pixels) is not kept (a device cannot make the rig hold gigabytes)
FRAME_PIXELS = 4096 * 4096


def _opencv_source(url: str, connect_timeout: float, auth: Credentials | None = None) -> tuple[str, int, rtsp_client.RtspAnswer | None]:
    """What to hand OpenCV for ``url``, the backend, and the answer to an RTSP DESCRIBE; raises
    StreamUnavailable with the reason (nothing listens on the RTSP port, DESCRIBE refused,
    a wrong password, no such video device) before OpenCV is asked, since OpenCV itself
    says only that it could not open. With ``auth`` the source carries the credentials as
    URL userinfo, which only FFmpeg sees (its log is off): never return it to a caller."""
    import cv2

    parts = urlsplit(url)
    if parts.scheme == "device":
        path = parts.path or parts.netloc
        if not path.startswith("/dev/"):
            raise StreamUnavailable(f"{url}: a local video device is named device:///dev/videoN")
        if not os.path.exists(path):
            raise StreamUnavailable(f"{path}: no such video device on this bench host")
        return path, cv2.CAP_V4L2, None
    if not parts.hostname:
        raise StreamUnavailable(f"{url}: no host in the URL")
    port = parts.port or (322 if parts.scheme == "rtsps" else 554)
    if parts.scheme == "rtsps":  # FFmpeg's own TLS; only the TCP connect is checked beforehand
        try:
            socket.create_connection((parts.hostname, port), timeout=connect_timeout).close()
        except OSError as exc:
            raise StreamUnavailable(f"connect to {parts.hostname}:{port}: {exc.strerror or exc}") from None
        answer = None
    else:
        answer = rtsp_client.request(url, "DESCRIBE", auth, connect_timeout)
        if answer.error and answer.status is None:
            raise StreamUnavailable(answer.error if answer.error.startswith("connect to") else f"{url}: {answer.error}")
        if answer.status == 401:
            why = (f"answered 401 to {answer.auth} as user {auth.user!r}: wrong user or password (camera.streams[].auth)" if answer.auth and auth
                   else f"answered 401 ({answer.challenge or 'no challenge'}): the stream wants credentials; give them in auth: {{user, password_env}}"
                   if auth is None else f"answered 401 ({answer.challenge or 'no challenge'}): the rig cannot answer this challenge")
            raise StreamUnavailable(f"{url}: DESCRIBE {why}", 401)
        if not answer.ok:
            raise StreamUnavailable(f"{url}: DESCRIBE answered {answer.status}", answer.status)
    if auth is None:
        return url, cv2.CAP_FFMPEG, answer
    netloc = f"{quote(auth.user, safe='')}:{quote(auth.password, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), cv2.CAP_FFMPEG, answer


def _grab_opencv(url: str, seconds: float, max_frames: int, connect_timeout: float, keep: bool = True,
                 auth: Credentials | None = None) -> FrameGrab:
    """RTSP(S) through FFmpeg, or a V4L2 device: see :func:`grab_frames`. Opening is bounded by
    ``connect_timeout`` and each read by the rest of the window (FFmpeg's own timeouts).
    Without ``keep`` frames are only counted (a pull that makes the device send)."""
    import cv2

    grab = FrameGrab(url)
    start = time.monotonic()
    try:
        source, backend, answer = _opencv_source(url, connect_timeout, auth)
    except StreamUnavailable as exc:
        grab.error, grab.status = str(exc), exc.status
        return grab
    if answer is not None:
        grab.status, grab.auth = answer.status, answer.auth
    with _env_lock:
        for k, v in _FFMPEG_ENV.items():
            os.environ.setdefault(k, v)
    ms = int(max(connect_timeout, 0.5) * 1000)
    read_ms = int(max(min(seconds, 10.0), 0.5) * 1000)
    cap = cv2.VideoCapture(source, backend, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms])
    try:
        if not cap.isOpened():
            what = "the video device did not open (busy, or not a capture device?)" if backend == cv2.CAP_V4L2 else \
                f"the RTSP session did not start within {connect_timeout:g} s (DESCRIBE or SETUP refused, credentials needed, or no decodable track)"
            grab.error = f"{source if backend == cv2.CAP_V4L2 else url}: {what}"
            return grab
        opened = time.monotonic()
        deadline = opened + seconds
        while time.monotonic() < deadline and grab.decoded < max_frames:
            ok, img = cap.read()
            if not ok:
                break  # the stream ended or stalled past the read timeout: a camera that stops sending
            if img is None or img.shape[0] * img.shape[1] > FRAME_PIXELS:
                grab.undecodable += 1
                continue
            grab.decoded += 1
            if keep:
                grab.frames.append(img)
                grab.times.append(round(time.monotonic() - start, 3))
    finally:
        cap.release()
    return grab
