"""A forged TLS server: the certificate the rig chooses, one connection at a time, and what the
client did with it (certmitm's method, in small).

The rig listens on the bench host; :mod:`drivers.netfilter` sends the device's connection to
its upstream here. For each attempt the server presents one certificate class and records
how far the handshake got, the name the client asked for (SNI) and the first bytes of
application data it sent (bounded).

What counts, and as what (docs/verdicts.md, "refusals"):

* **accepted**: the client completed the handshake with the forged certificate, whether or not
  it then sent data (a client that finishes a handshake has taken the certificate; the bytes
  it sends are the evidence of what it leaks);
* **refused**: the client's own judgement of the certificate, and only that: a certificate
  alert it sent (unknown CA, bad, expired, unknown, revoked or unsupported certificate), or a
  close right after the server's Certificate message reached it;
* **not observed** (``no handshake: ...``): no ClientHello in time, a close before or during the
  ClientHello, bytes that are not TLS, a stall after the certificate, a failure on no common
  version or suite, or any alert that is not about the certificate. None of these says the
  device judged the certificate.

Only connections from the addresses the server is told to expect (the device's) are taken;
others are closed and noted, never counted. The handshake is driven through memory BIOs so
the server knows which handshake messages went each way (OpenSSL's message callback).
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from drivers.tlsprobe import every_version
from drivers.transcript import escape_bytes

APP_DATA_LIMIT = 4096
#: connections from unexpected addresses closed per attempt before it gives up on them
STRANGERS_LIMIT = 50
#: a handshake (ClientHello to Finished) is given this long
HANDSHAKE_S = 5.0

#: alerts a client sends when it does not trust the certificate it was shown: a refusal.
#: Any other alert (handshake_failure, protocol_version, decode_error...) is no judgement of it.
CERT_ALERTS = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED", "CERTIFICATE_UNKNOWN", "CERTIFICATE_REVOKED",
               "UNSUPPORTED_CERTIFICATE")


def is_certificate_alert(reason: str) -> bool:
    """``reason`` (an OpenSSL error reason) is an alert the peer sent about a certificate."""
    return reason.startswith(("TLSV1_ALERT_", "SSLV3_ALERT_", "TLSV13_ALERT_")) and any(m in reason for m in CERT_ALERTS)


@dataclass
class Attempt:
    """One connection to the forged server."""

    certificate: str  # the class presented
    connected: bool = False
    client: str | None = None
    sni: str | None = None
    handshake: str = "no connection"  # "completed (TLSv1.3)" | "refused: <alert or close>" | "no handshake: <reason>"
    version: str | None = None
    certificate_sent: bool = False  # the server's Certificate message went out
    app_bytes: int = 0
    app_head: str = ""  # escaped, bounded
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """The client completed the handshake: it took the forged certificate."""
        return self.handshake.startswith("completed")

    @property
    def refused(self) -> bool:
        """The client refused the certificate itself (an alert about it, or a close right after it)."""
        return self.handshake.startswith("refused")

    @property
    def sent_data(self) -> bool:
        """The client sent application data to the forged server."""
        return self.app_bytes > 0


class ForgedServer:
    """A listening socket on the bench host (``port``: an ephemeral one) that serves attempts
    from the ``expect`` addresses only (``None``: from anyone, for tests on loopback)."""

    def __init__(self, bind: str = "0.0.0.0", expect: set[str] | None = None):
        self.sock = socket.create_server((bind, 0))
        self.port = self.sock.getsockname()[1]
        self.expect = set(expect) if expect is not None else None

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()

    def _accept(self, att: Attempt, deadline: float) -> socket.socket | None:
        """The next connection from an expected address before ``deadline``; others are closed and noted."""
        for _ in range(STRANGERS_LIMIT + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, socket.timeout):
                return None
            if self.expect is None or peer[0] in self.expect:
                att.connected, att.client = True, f"{peer[0]}:{peer[1]}"
                return conn
            att.notes.append(f"a connection from {peer[0]}:{peer[1]}, not the device, was closed")
            conn.close()
        att.notes.append(f"more than {STRANGERS_LIMIT} connections from other addresses: gave up")
        return None

    def attempt(self, label: str, cert: Path, key: Path, window_s: float, data_wait_s: float = 3.0,
                handshake_s: float = HANDSHAKE_S) -> Attempt:
        """Wait up to ``window_s`` for the next connection from the device, present ``cert``, and
        record what the client does (see the module docstring). Never raises for the client's
        behaviour."""
        att = Attempt(label)
        start = time.monotonic()
        conn = self._accept(att, start + window_s)
        if conn is None:
            att.seconds = round(time.monotonic() - start, 3)
            return att
        try:
            tls = self._handshake(att, conn, cert, key, handshake_s)
            if tls is not None:
                self._read_data(att, conn, *tls, data_wait_s)
        finally:
            conn.close()
            att.seconds = round(time.monotonic() - start, 3)
        return att

    @staticmethod
    def _context(att: Attempt, cert: Path, key: Path) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        every_version(ctx)  # a handshake must fail on the device's judgement of the certificate, never on the forged server's refusals

        def _sni(_obj: object, name: str | None, _ctx: ssl.SSLContext) -> None:
            att.sni = name[:253] if name else None

        def _msg(_conn: object, direction: str, _version: object, content_type: object, msg_type: object, _data: bytes) -> None:
            if direction == "write" and content_type == ssl._TLSContentType.HANDSHAKE and msg_type == ssl._TLSMessageType.CERTIFICATE:
                att.certificate_sent = True

        ctx.sni_callback = _sni  # type: ignore[assignment]
        ctx._msg_callback = _msg  # type: ignore[attr-defined]  # OpenSSL's message callback: which handshake messages went out
        return ctx

    def _handshake(self, att: Attempt, conn: socket.socket, cert: Path, key: Path, handshake_s: float
                   ) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO] | None:
        """Drive the server side of the handshake; returns the TLS object and its BIOs when it completed."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self._context(att, cert, key).wrap_bio(incoming, outgoing, server_side=True)
        deadline = time.monotonic() + handshake_s
        heard = 0
        while True:
            try:
                obj.do_handshake()
                _flush(conn, outgoing)
                att.handshake, att.version = f"completed ({obj.version()})", obj.version()
                return obj, incoming, outgoing
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                _flush(conn, outgoing)
                reason = exc.reason or str(exc)
                att.handshake = f"refused: the client sent {reason}" if is_certificate_alert(reason) else f"no handshake: {reason}"
                return None
            try:
                _flush(conn, outgoing)
            except OSError as exc:
                att.handshake = self._gone(att, heard, f"{type(exc).__name__} while the server wrote")
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                att.handshake = ("no handshake: the client stalled after the server's certificate" if att.certificate_sent else
                                 "no handshake: no ClientHello" if not heard else "no handshake: the handshake stalled") + f" ({handshake_s:g} s)"
                return None
            conn.settimeout(left)
            try:
                data = conn.recv(16384)
            except (TimeoutError, socket.timeout):
                continue
            except OSError as exc:
                att.handshake = self._gone(att, heard, f"{type(exc).__name__} ({exc.strerror or exc})")
                return None
            if not data:
                att.handshake = self._gone(att, heard, "closed")
                return None
            if not heard and data[0] != 0x16:
                att.handshake = f"no handshake: not TLS (first bytes {escape_bytes(data[:16])})"
                return None
            heard += len(data)
            incoming.write(data)

    @staticmethod
    def _gone(att: Attempt, heard: int, how: str) -> str:
        """What a client that hung up mid-handshake did: a refusal only right after the certificate."""
        if att.certificate_sent:
            return f"refused: the client {how} right after the server's certificate"
        return f"no handshake: the client {how} " + ("before its ClientHello" if not heard else "before the server's certificate")

    @staticmethod
    def _read_data(att: Attempt, conn: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                   data_wait_s: float) -> None:
        """Application data the client sends within ``data_wait_s`` of the handshake (bounded)."""
        head = b""
        deadline = time.monotonic() + data_wait_s
        try:
            while att.app_bytes < APP_DATA_LIMIT:
                try:
                    data = obj.read(APP_DATA_LIMIT)
                    if not data:
                        break
                    att.app_bytes += len(data)
                    head += data[: 256 - len(head)]
                    continue
                except ssl.SSLWantReadError:
                    pass
                _flush(conn, outgoing)  # TLS 1.3 session tickets
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                conn.settimeout(left)
                try:
                    raw = conn.recv(16384)
                except (TimeoutError, socket.timeout):
                    break
                if not raw:
                    break
                incoming.write(raw)
        except ssl.SSLZeroReturnError:
            pass  # close_notify
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            att.notes.append(f"after the handshake: {reason}")
            if is_certificate_alert(reason) and not att.app_bytes:
                att.handshake = f"refused: the client completed the handshake, then sent {reason}"
        except OSError as exc:
            att.notes.append(f"after the handshake: {type(exc).__name__}: {exc.strerror or exc}")
        att.app_head = escape_bytes(head[:256])


def _flush(conn: socket.socket, outgoing: ssl.MemoryBIO) -> None:
    data = outgoing.read()
    if data:
        conn.sendall(data)
