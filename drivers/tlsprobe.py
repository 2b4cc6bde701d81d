"""Active TLS check of one port: versions, weak suites, certificate, client authentication.

Uses this host's OpenSSL through :mod:`ssl` at security level 0, so the client can
still *offer* TLS 1.0/1.1 and legacy suites and see whether the device accepts them
(a modern client negotiating TLS 1.3 says nothing about what else the server takes).
Each handshake is a fresh connection with a deadline; certificate facts come from the
DER the server sent, parsed by :mod:`cryptography`.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import warnings
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from rig.certs import self_signed
from rig.traffic.protocols import suite_is_weak

VERSIONS = (("TLSv1.0", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1), ("TLSv1.2", ssl.TLSVersion.TLSv1_2), ("TLSv1.3", ssl.TLSVersion.TLSv1_3))
WEAK_VERSIONS = ("TLSv1.0", "TLSv1.1")
_REFUSED_MARKERS = ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER", "NO_PROTOCOLS_AVAILABLE", "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
                    "NO_SHARED_CIPHER", "HANDSHAKE_FAILURE", "INSUFFICIENT_SECURITY", "NO_CIPHERS_AVAILABLE")


@dataclass
class VersionResult:
    """One protocol version offered alone: accepted with a suite, or refused with the reason."""

    version: str
    accepted: bool
    suite: str | None = None  # what the server chose when offered everything
    reason: str | None = None  # why it was not accepted


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
    """Mutual TLS: how the server treated clients with no, a self-made and the configured certificate."""

    no_certificate: str  # "refused" | "accepted" | "error: ..."
    self_made_certificate: str
    configured_certificate: str | None  # None: no client certificate configured


@dataclass
class TlsReport:
    """Everything the active check learned about one TLS port."""

    host: str
    port: int
    versions: list[VersionResult] = field(default_factory=list)
    weak_suites: dict[str, list[str]] = field(default_factory=dict)
    certificate: CertFacts | None = None
    client_auth: ClientAuthResult | None = None

    @property
    def accepted(self) -> list[str]:
        """Versions the server completed a handshake with."""
        return [v.version for v in self.versions if v.accepted]

    def to_dict(self) -> dict:
        """JSON-ready form for tls-<port>.json."""
        return asdict(self)


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
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return None, f"connect: {exc.strerror or exc}"
    try:
        tls = ctx.wrap_socket(raw, server_hostname=host if not _is_ip(host) else None)
        return tls, None
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


def probe(host: str, port: int, timeout: float = 5.0, client_cert: tuple[Path, Path] | None = None, mutual: bool = False) -> TlsReport:
    """Versions accepted, weak suites accepted per legacy version, certificate facts, and
    (``mutual``) whether clients without a valid certificate are refused."""
    rep = TlsReport(host, port)
    der: bytes | None = None
    for name, version in VERSIONS:
        sock, reason = _handshake(host, port, _context(version, cert=client_cert), timeout)
        if sock is None:
            rep.versions.append(VersionResult(name, False, reason=reason))
            continue
        try:
            suite = sock.cipher()[0] if sock.cipher() else None
            der = der or sock.getpeercert(binary_form=True)
        finally:
            sock.close()
        rep.versions.append(VersionResult(name, True, suite=suite))
    for v in rep.versions:
        if not v.accepted or v.version == "TLSv1.3":
            continue  # every TLS 1.3 suite is an AEAD
        version = dict(VERSIONS)[v.version]
        weak = []
        for cipher in _weak_candidates():
            try:
                ctx = _context(version, ciphers=f"{cipher}:@SECLEVEL=0", cert=client_cert)
            except ssl.SSLError:
                continue
            sock, _ = _handshake(host, port, ctx, timeout)
            if sock is not None:
                weak.append(cipher)
                sock.close()
        if weak:
            rep.weak_suites[v.version] = weak
    if der:
        rep.certificate = certificate_facts(der)
    if mutual:
        rep.client_auth = client_auth(host, port, timeout, client_cert)
    return rep


def _weak_candidates() -> list[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3" and suite_is_weak(c["name"])]


def _request_outcome(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> str:
    """Handshake, send a request, read: ``refused`` if the server alerts or hangs up without a byte."""
    sock, reason = _handshake(host, port, ctx, timeout)
    if sock is None:
        return f"refused ({reason})"
    try:
        sock.settimeout(min(timeout, 2.0))
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = sock.recv(1)
        return "accepted" if data else "refused (closed without data)"
    except ssl.SSLError as exc:
        return f"refused ({exc.reason or exc})"
    except TimeoutError:
        return "accepted (no alert within 2 s)"
    except OSError as exc:
        return f"refused ({type(exc).__name__})"
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
