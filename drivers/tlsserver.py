"""A forged TLS server: the certificate the rig chooses, one connection at a time, and what the
client did with it (certmitm's method, in small).

The rig listens on the bench host; :mod:`drivers.netfilter` sends the device's connection to
its upstream here. For each attempt the server presents one certificate class and records
whether the client completed the handshake, the name it asked for (SNI), and the first bytes
of application data it sent (bounded): a client that sends anything to a server it should
not trust is the finding.
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

#: alerts a client sends when it does not trust the certificate it was shown: a refusal. A
#: client that hangs up mid-handshake without an alert (some embedded stacks) refuses too; any
#: other failure (no common version or suite, not TLS at all) is no handshake: nothing was judged
CERT_ALERTS = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED", "CERTIFICATE_UNKNOWN", "CERTIFICATE_REVOKED",
               "UNSUPPORTED_CERTIFICATE", "ACCESS_DENIED", "DECRYPT_ERROR", "HANDSHAKE_FAILURE")


@dataclass
class Attempt:
    """One connection to the forged server."""

    certificate: str  # the class presented
    connected: bool = False
    client: str | None = None
    sni: str | None = None
    handshake: str = "no connection"  # "completed (TLSv1.3)" | "refused: <alert or reason>" | "no handshake: <reason>"
    version: str | None = None
    app_bytes: int = 0
    app_head: str = ""  # escaped, bounded
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """The client completed the handshake."""
        return self.handshake.startswith("completed")

    @property
    def sent_data(self) -> bool:
        """The client sent application data to the forged server."""
        return self.app_bytes > 0


class ForgedServer:
    """A listening socket on the bench host (``port``: an ephemeral one) that serves attempts."""

    def __init__(self, bind: str = "0.0.0.0"):
        self.sock = socket.create_server((bind, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()

    def attempt(self, label: str, cert: Path, key: Path, window_s: float, data_wait_s: float = 3.0) -> Attempt:
        """Wait up to ``window_s`` for the next connection, present ``cert``, and record what the
        client does (see :class:`Attempt`). Never raises for the client's behaviour."""
        att = Attempt(label)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        every_version(ctx)  # a handshake must fail on the device's judgement of the certificate, never on the forged server's refusals

        def _sni(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            att.sni = name[:253] if name else None

        ctx.sni_callback = _sni  # type: ignore[assignment]
        start = time.monotonic()
        self.sock.settimeout(window_s)
        try:
            conn, peer = self.sock.accept()
        except (TimeoutError, socket.timeout):
            att.seconds = round(time.monotonic() - start, 3)
            return att
        att.connected, att.client = True, f"{peer[0]}:{peer[1]}"
        conn.settimeout(5)
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            att.handshake = (f"refused: {reason}" if any(m in reason for m in CERT_ALERTS) or "EOF" in reason
                             else f"no handshake: {reason}")
            conn.close()
            att.seconds = round(time.monotonic() - start, 3)
            return att
        except OSError as exc:
            att.handshake = f"refused: {type(exc).__name__} ({exc.strerror or exc})"  # the client hung up during the handshake
            conn.close()
            att.seconds = round(time.monotonic() - start, 3)
            return att
        att.handshake, att.version = f"completed ({tls.version()})", tls.version()
        head = b""
        deadline = time.monotonic() + data_wait_s
        try:
            while att.app_bytes < APP_DATA_LIMIT and time.monotonic() < deadline:
                tls.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    data = tls.recv(APP_DATA_LIMIT)
                except (TimeoutError, socket.timeout):
                    break
                if not data:
                    break
                att.app_bytes += len(data)
                head += data[: 256 - len(head)]
        except (OSError, ssl.SSLError) as exc:
            att.notes.append(f"after the handshake: {type(exc).__name__}: {getattr(exc, 'reason', None) or exc}")
        finally:
            tls.close()
        att.app_head = escape_bytes(head[:256])
        att.seconds = round(time.monotonic() - start, 3)
        return att
