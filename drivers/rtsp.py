"""RTSP requests as a client makes them (RFC 2326): one method on one connection, answered
through Basic or Digest when the server asks and credentials are given.

Used to ask a camera whether a stream is open (DESCRIBE without credentials), to tell a
wrong password from a stream that is down before FFmpeg is handed the stream (FFmpeg
only says it could not open), and to try default accounts. Replies are bounded
(:data:`REPLY_LIMIT`) and kept raw for the caller's transcript; the ``Authorization``
header sent is never returned.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from drivers import httpauth
from drivers.httpauth import Credentials
from drivers.wire import content_length, head_complete, head_headers, read_until

REPLY_LIMIT = 64 * 1024


@dataclass
class RtspAnswer:
    """What the server said to the last request: status (``None``: no RTSP answer), headers
    (lower-case names, every value), the raw replies, the scheme the rig answered with
    (``Digest MD5``...), and an error line when no answer came."""

    status: int | None
    headers: dict[str, list[str]] = field(default_factory=dict)
    replies: list[bytes] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # request lines, for a transcript (never the Authorization header)
    auth: str | None = None
    challenge: str | None = None  # the challenges offered, as labels ("Digest MD5, Basic")
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The last request was answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


def _read_reply(sock: socket.socket | ssl.SSLSocket, deadline: float) -> bytes:
    """One reply: its head, then as much body as Content-Length says (all bounded)."""
    data = read_until(sock, deadline, head_complete, REPLY_LIMIT)
    head, sep, body = data.partition(b"\r\n\r\n")
    length = content_length(head_headers(head)) if sep else None
    if length is None:
        return data
    want = min(length, REPLY_LIMIT)
    body = read_until(sock, deadline, lambda b: len(b) >= want, want + 1, body)
    return head + sep + body[:want]


def _parse(reply: bytes) -> tuple[int | None, dict[str, list[str]]]:
    m = re.match(rb"RTSP/\d\.\d (\d{3})", reply)
    return (int(m.group(1)) if m else None), head_headers(reply)


def request(url: str, method: str = "DESCRIBE", auth: Credentials | None = None, timeout: float = 5.0) -> RtspAnswer:
    """Send ``method url`` (``rtsp://`` or ``rtsps://``) and, when the server answers 401 and
    ``auth`` is given, once more on the same connection with the strongest challenge it
    offered. Bounded by ``timeout`` per reply; never raises for network errors."""
    parts = urlsplit(url)
    ans = RtspAnswer(None)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        ans.error = f"not an rtsp:// URL: {url}"
        return ans
    port = parts.port or (322 if parts.scheme == "rtsps" else 554)
    try:
        sock: socket.socket | ssl.SSLSocket = socket.create_connection((parts.hostname, port), timeout=timeout)
    except OSError as exc:
        ans.error = f"connect to {parts.hostname}:{port}: {exc.strerror or exc}"
        return ans
    try:
        if parts.scheme == "rtsps":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=parts.hostname)
        authorization: str | None = None
        for cseq in (1, 2):
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", "User-Agent: privrig"]
            if method == "DESCRIBE":
                lines.append("Accept: application/sdp")
            ans.sent.append(" / ".join(lines) + (f" / Authorization: [{ans.auth}, user {auth.user}]" if authorization and auth else ""))
            if authorization:
                lines.append(f"Authorization: {authorization}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            reply = _read_reply(sock, time.monotonic() + timeout)
            ans.replies.append(reply)
            ans.status, ans.headers = _parse(reply)
            if ans.status is not None and not head_complete(reply):  # endless headers, a 1 GB line: no answer was given
                ans.status, ans.headers = None, {}
                ans.error = f"the reply head did not end (no blank line within {REPLY_LIMIT >> 10} KiB or {timeout:g} s): not an RTSP answer"
                return ans
            if ans.status is None:
                ans.error = "no RTSP answer" if not reply else "not an RTSP answer"
                return ans
            if ans.status != 401 or authorization is not None:
                return ans
            offered = httpauth.challenges(*ans.headers.get("www-authenticate", []))
            ans.challenge = ", ".join(c.label() for c in offered) or None
            chosen = httpauth.choose(offered)
            if auth is None or chosen is None:
                return ans
            ans.auth = chosen.label()
            authorization = httpauth.authorization(chosen, auth, method, url)
        return ans
    except (OSError, ssl.SSLError) as exc:
        ans.error = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        return ans
    finally:
        sock.close()
