"""TLS handshakes the rig makes itself: whether a port speaks TLS, how a server treats
clients with no, a self-made and the configured certificate (mutual TLS), and the facts
of a certificate. Versions, suites and vulnerabilities are sslyze's (:mod:`drivers.tlsscan`).

Uses this host's OpenSSL through :mod:`ssl` at security level 0; each handshake is a fresh
connection with a deadline; certificate facts come from the DER the server sent, parsed by
:mod:`cryptography`.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import warnings
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from rig.certs import self_signed


def every_version(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """``ctx`` opened to every TLS version and suite this host's OpenSSL still has (security
    level 0): a device that speaks only TLS 1.0 is still reached, and the rig's side is never
    the one that refuses a handshake. Returns ``ctx``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return ctx


@dataclass
class CertFacts:
    """The server certificate's facts and the weaknesses they show."""

    subject: str
    issuer: str
    self_signed: bool
    not_before: str
    not_after: str
    expired: bool
    key: str
    signature_hash: str | None
    weaknesses: list[str] = field(default_factory=list)


@dataclass
class ClientAuthResult:
    """Mutual TLS: how the server treated clients with no, a self-made and the configured
    certificate. Each outcome is one of (see :func:`outcome_state`):

    * ``accepted`` (the server answered a request) or ``accepted (no alert within 2 s)``;
    * ``refused (<the server's alert, or its close>)``: the server's own refusal (:data:`REFUSALS`);
    * ``error: <why>``: the rig could not connect at all (the device went away);
    * ``not observed: <why>``: the connection or the handshake timed out, or the exchange broke in a
      way no refusal does (garbage after the ServerHello): nothing was judged.
    """

    no_certificate: str
    self_made_certificate: str
    configured_certificate: str | None  # None: no client certificate configured

    def outcomes(self) -> list[tuple[str, str]]:
        """(which client, outcome) for each client tried."""
        out = [("no certificate", self.no_certificate), ("a self-made certificate", self.self_made_certificate)]
        if self.configured_certificate is not None:
            out.append(("the configured certificate", self.configured_certificate))
        return out

    def gap(self) -> tuple[str, str] | None:
        """(``error`` or ``unobserved``, why) when some client's outcome was not the server's
        answer (a connect failure, a timeout); ``None`` when every one was."""
        for state in ("error", "unobserved"):
            bad = [f"{label}: {o}" for label, o in self.outcomes() if outcome_state(o) == state]
            if bad:
                return state, "; ".join(bad)
        return None


def outcome_state(outcome: str) -> str:
    """``accepted``, ``refused``, ``error`` or ``unobserved`` for one :class:`ClientAuthResult` outcome."""
    if outcome.startswith("accepted"):
        return "accepted"
    if outcome.startswith("refused"):
        return "refused"
    if outcome.startswith("error"):
        return "error"
    return "unobserved"


def _context(version: ssl.TLSVersion | None, ciphers: str = "ALL:COMPLEMENTOFALL:@SECLEVEL=0",
             cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we are examining the server, not trusting it
    if version is not None:
        with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point of the check
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers(ciphers)
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def _handshake(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> tuple[ssl.SSLSocket | None, str | None]:
    """A TLS connection, or why not: ``connect: ...`` (no TCP connection), ``timeout: ...`` (the
    connection or the handshake ran out of time), else the TLS failure's reason."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except (TimeoutError, socket.timeout):
        return None, f"timeout: no TCP connection within {timeout:g} s"
    except OSError as exc:
        return None, f"connect: {exc.strerror or exc}"
    try:
        tls = ctx.wrap_socket(raw, server_hostname=host if not _is_ip(host) else None)
        return tls, None
    except (TimeoutError, socket.timeout):
        raw.close()
        return None, f"timeout: the handshake did not finish within {timeout:g} s"
    except ssl.SSLError as exc:
        raw.close()
        return None, exc.reason or str(exc)
    except OSError as exc:
        raw.close()
        return None, f"{type(exc).__name__}: {exc.strerror or exc}"


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def speaks_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """True if a TLS handshake on ``host:port`` gets a ServerHello (even if it then fails on client auth)."""
    sock, reason = _handshake(host, port, _context(None), timeout)
    if sock is not None:
        sock.close()
        return True
    return reason is not None and any(m in reason for m in ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE", "PROTOCOL_VERSION"))


#: what a server that turns a client away says: an alert about the certificate or the handshake, or a
#: hang-up. Any other failure (a record the client cannot parse, an unsafe renegotiation, a wrong version
#: number) is a broken exchange, not a refusal: a device that sends garbage after its ServerHello must not
#: pass as one that demands a certificate
REFUSALS = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE",
            "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "ACCESS_DENIED", "HANDSHAKE_FAILURE", "DECRYPT_ERROR",
            "PEER_DID_NOT_RETURN_A_CERTIFICATE", "NO_CERTIFICATE", "EOF", "closed without data", "ConnectionResetError",
            "BrokenPipeError", "ConnectionAbortedError")


def _refusal(reason: str) -> str:
    """``refused (reason)`` when ``reason`` is a server's refusal (:data:`REFUSALS`), else not observed."""
    if any(m.lower() in reason.lower() for m in REFUSALS):
        return f"refused ({reason})"
    return f"not observed: the TLS exchange broke ({reason[:200]}): not a refusal the rig can read"


def _request_outcome(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> str:
    """Handshake, send a request, read: ``refused`` only on the server's own alert or hang-up;
    a connect failure is ``error``, a timeout ``not observed`` (see :class:`ClientAuthResult`)."""
    sock, reason = _handshake(host, port, ctx, timeout)
    if sock is None:
        assert reason is not None
        if reason.startswith("connect:"):
            return f"error: cannot {reason}"
        if reason.startswith("timeout:"):
            return f"not observed: {reason[len('timeout: '):]}"
        return _refusal(reason)
    try:
        sock.settimeout(min(timeout, 2.0))
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = sock.recv(1)
        return "accepted" if data else "refused (closed without data)"
    except ssl.SSLError as exc:
        return _refusal(str(exc.reason or exc))
    except (TimeoutError, socket.timeout):
        return "accepted (no alert within 2 s)"
    except OSError as exc:
        return _refusal(type(exc).__name__)
    finally:
        sock.close()


def client_auth(host: str, port: int, timeout: float, client_cert: tuple[Path, Path] | None) -> ClientAuthResult:
    """How the TLS service on ``host:port`` treats a client with no certificate, with a certificate
    the rig made itself, and with the configured one (``None`` when none is configured). The
    self-made key lives in a private temporary folder, removed at once: it never reaches a bundle."""
    none = _request_outcome(host, port, _context(None, "DEFAULT"), timeout)
    with tempfile.TemporaryDirectory(prefix="privrig-tls-") as work:
        forged = self_signed(Path(work), "privrig-untrusted-client")
        selfmade = _request_outcome(host, port, _context(None, "DEFAULT", cert=forged), timeout)
    configured = _request_outcome(host, port, _context(None, "DEFAULT", cert=client_cert), timeout) if client_cert else None
    return ClientAuthResult(none, selfmade, configured)


def certificate_facts(der: bytes) -> CertFacts:
    """Subject, issuer, validity, key and signature of a DER certificate, with weaknesses named."""
    cert = x509.load_der_x509_certificate(der)
    pub = cert.public_key()
    weaknesses = []
    if isinstance(pub, rsa.RSAPublicKey):
        key = f"RSA {pub.key_size}"
        if pub.key_size < 2048:
            weaknesses.append(f"RSA key of {pub.key_size} bits (< 2048)")
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        key = f"EC {pub.curve.name}"
        if pub.curve.key_size < 256:
            weaknesses.append(f"EC key of {pub.curve.key_size} bits (< 256)")
    elif isinstance(pub, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key = type(pub).__name__.replace("PublicKey", "")
    elif isinstance(pub, dsa.DSAPublicKey):
        key = f"DSA {pub.key_size}"
        weaknesses.append("DSA key")
    else:
        key = type(pub).__name__
    algo = cert.signature_hash_algorithm
    sig = algo.name if algo is not None else None
    if isinstance(algo, (hashes.MD5, hashes.SHA1)):
        weaknesses.append(f"signed with {algo.name.upper()}")
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc)
    if expired:
        weaknesses.append("outside its validity period")
    return CertFacts(
        subject=cert.subject.rfc4514_string()[:300], issuer=cert.issuer.rfc4514_string()[:300], self_signed=cert.subject == cert.issuer,
        not_before=cert.not_valid_before_utc.isoformat(), not_after=cert.not_valid_after_utc.isoformat(), expired=expired, key=key,
        signature_hash=sig, weaknesses=weaknesses,
    )
