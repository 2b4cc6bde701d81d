"""TLS scanning of one port with sslyze: versions, every accepted suite, the certificate,
compression, renegotiation, and the vulnerabilities sslyze tests (Heartbleed, ROBOT, CCS
injection).

sslyze carries its own OpenSSL builds (nassl), one of which still speaks SSL 2.0, SSL 3.0
and the RC4, 3DES, EXPORT and NULL suites that this host's OpenSSL 3 no longer offers. A
device that keeps them is therefore seen keeping them, which a modern client cannot show.

A port where no handshake completes at all (sslyze's connectivity test fails) has
``handshake`` false and the reason in ``error``: nothing was observed there, which is
never a pass. A scan command that fails is named in ``incomplete``.

sslyze files a suite whose handshake timed out or was reset among the *rejected* ones. A
device that stalls under sslyze's concurrent connections would then show no weak suite at
all. So such suites (and versions whose scan failed) are scanned again, one connection at a
time; a suite that still times out is not observed (``VersionScan.error``), and a reset that
repeats with nothing else running is the server's own rejection. A TLS alert, a "no cipher"
error and a clean close are rejections the first time.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drivers.tlsprobe import CertFacts, ClientAuthResult, certificate_facts

#: sslyze's names of the protocol versions, oldest first, and how evidence names them
VERSIONS = (("ssl_2_0", "SSLv2"), ("ssl_3_0", "SSLv3"), ("tls_1_0", "TLSv1.0"), ("tls_1_1", "TLSv1.1"), ("tls_1_2", "TLSv1.2"), ("tls_1_3", "TLSv1.3"))
#: versions below TLS 1.2
WEAK_VERSIONS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")

#: IANA suite name fragments that mean no protection worth the name
_BROKEN = (("_NULL_", "no encryption (NULL)"), ("_anon_", "no server authentication (anonymous)"), ("EXPORT", "export-grade key"),
           ("_RC4_", "RC4"), ("_3DES_", "3DES (64-bit block: Sweet32)"), ("_DES_", "DES"), ("_DES40_", "DES40"), ("_RC2_", "RC2"),
           ("_IDEA_", "IDEA (64-bit block)"), ("_MD5", "MD5 MAC"))
#: key exchanges without forward secrecy: a recorded session opens once the server key leaks
_NO_PFS = re.compile(r"^(TLS|SSL)_(RSA|PSK|RSA_PSK|DH|ECDH|SRP_SHA)_(?!EXPORT)")


#: sslyze's messages for a suite's handshake that timed out, and one reset mid-handshake (not a TLS answer)
TIMED_OUT = "timed out"
RESET = ("Server rejected the connection", "Server interrupted the TLS handshake")
#: the scan commands of the suite tests
SUITE_COMMANDS = {attr: f"{attr}_cipher_suites" for attr, _ in VERSIONS}


def ambiguous_rejection(message: str) -> bool:
    """A rejected suite's sslyze message that is no answer of the server's TLS (a timeout, a reset)."""
    return TIMED_OUT in message or message.startswith(RESET)


def suite_weakness(name: str) -> tuple[str, str] | None:
    """(``broken`` or ``no-forward-secrecy``, why) for a weak suite's IANA name, else ``None``."""
    for marker, why in _BROKEN:
        if marker in name:
            return "broken", why
    if _NO_PFS.match(name) and not name.startswith(("TLS_AES_", "TLS_CHACHA20_")):
        return "no-forward-secrecy", "static key exchange: no forward secrecy"
    return None


@dataclass
class VersionScan:
    """One protocol version: whether the server took it, and the suites it accepted with it."""

    version: str
    accepted: bool
    suites: list[str] = field(default_factory=list)
    error: str | None = None  # the scan of this version did not complete (or suites timed out twice)
    retried: list[str] = field(default_factory=list)  # suites scanned again, alone, after a timeout or reset


@dataclass
class TlsScan:
    """What sslyze learned about one TLS port (see the module docstring)."""

    host: str
    port: int
    handshake: bool = False
    error: str | None = None
    versions: list[VersionScan] = field(default_factory=list)
    weak_suites: dict[str, dict[str, str]] = field(default_factory=dict)  # version -> suite -> why (broken ones)
    no_forward_secrecy: dict[str, list[str]] = field(default_factory=dict)  # version -> suites
    certificate: CertFacts | None = None
    certificate_error: str | None = None  # sslyze's certificate test failed
    compression: bool | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation_dos: bool | None = None
    heartbleed: bool | None = None
    ccs_injection: bool | None = None
    robot: str | None = None  # sslyze's verdict name, e.g. NOT_VULNERABLE_NO_ORACLE
    incomplete: list[str] = field(default_factory=list)
    client_auth: ClientAuthResult | None = None
    scanner: str = ""

    @property
    def accepted(self) -> list[str]:
        """Versions the server completed a handshake with, oldest first."""
        return [v.version for v in self.versions if v.accepted]

    @property
    def robot_vulnerable(self) -> bool:
        """ROBOT: the server is a Bleichenbacher oracle (strong or weak)."""
        return bool(self.robot and self.robot.startswith("VULNERABLE"))

    def to_dict(self) -> dict:
        """JSON-ready form for tls-<port>.json."""
        return asdict(self)


def scan(host: str, port: int, client_cert: tuple[Path, Path] | None = None, timeout: int = 5) -> TlsScan:
    """Scan ``host:port`` with sslyze (a client certificate presented when given). Never raises
    for the device's failures: they are in ``error`` and ``incomplete``."""
    from sslyze import (ClientAuthenticationCredentials, ScanCommand, Scanner, ServerNetworkConfiguration, ServerNetworkLocation,
                        ServerScanRequest)
    from sslyze.errors import ServerHostnameCouldNotBeResolved

    rep = TlsScan(host, port, scanner=f"sslyze {_version()}")
    commands = {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES, ScanCommand.TLS_1_0_CIPHER_SUITES,
                ScanCommand.TLS_1_1_CIPHER_SUITES, ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
                ScanCommand.CERTIFICATE_INFO, ScanCommand.TLS_COMPRESSION, ScanCommand.SESSION_RENEGOTIATION,
                ScanCommand.HEARTBLEED, ScanCommand.ROBOT, ScanCommand.OPENSSL_CCS_INJECTION}
    try:
        creds = ClientAuthenticationCredentials(certificate_chain_path=Path(client_cert[0]), key_path=Path(client_cert[1])) if client_cert else None
        netcfg = ServerNetworkConfiguration(tls_server_name_indication=host, tls_client_auth_credentials=creds,
                                            network_timeout=timeout, network_max_retries=1)
        request = ServerScanRequest(server_location=ServerNetworkLocation(hostname=host, port=port, ip_address=host),
                                    network_configuration=netcfg, scan_commands=commands)
    except (ValueError, OSError, ServerHostnameCouldNotBeResolved) as exc:
        rep.error = f"cannot set up the scan: {exc}"
        return rep
    except Exception as exc:  # noqa: BLE001 (nassl refusing the configured client key raises its own error types)
        rep.error = f"cannot set up the scan: {type(exc).__name__}: {exc}"
        return rep
    res = _run(Scanner, request, 4)
    if res is None:
        rep.error = "sslyze returned no result"
        return rep
    if res.scan_result is None or res.connectivity_error_trace is not None:
        trace = res.connectivity_error_trace
        rep.error = f"no TLS handshake completed: {_one_line(trace) if trace else res.connectivity_status.name}"
        return rep
    rep.handshake = True
    out = res.scan_result
    suites = {attr: getattr(out, SUITE_COMMANDS[attr]) for attr, _ in VERSIONS}
    again = [attr for attr, attempt in suites.items() if attempt.result is None
             or any(ambiguous_rejection(r.error_message) for r in attempt.result.rejected_cipher_suites)]
    retried: dict[str, list[str]] = {}
    if again:  # timeouts and resets under concurrency: once more, one connection at a time
        for attr in again:
            first = suites[attr].result
            retried[attr] = [r.cipher_suite.name for r in first.rejected_cipher_suites if ambiguous_rejection(r.error_message)] if first else ["all"]
        retry = ServerScanRequest(server_location=request.server_location, network_configuration=netcfg,
                                  scan_commands={ScanCommand(SUITE_COMMANDS[a]) for a in again})
        second = _run(Scanner, retry, 1)
        if second is not None and second.scan_result is not None:
            for attr in again:
                suites[attr] = getattr(second.scan_result, SUITE_COMMANDS[attr])
    for attr, label in VERSIONS:
        attempt = suites[attr]
        if attempt.result is None:
            rep.versions.append(VersionScan(label, False, error=_attempt_error(attempt), retried=retried.get(attr, [])))
            rep.incomplete.append(f"{label} suites: {_attempt_error(attempt)}")
            continue
        names = [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
        stalled = [r.cipher_suite.name for r in attempt.result.rejected_cipher_suites if TIMED_OUT in r.error_message]
        error = (f"{len(stalled)} suite(s) timed out, alone too, and were not judged: {', '.join(stalled[:4])}"
                 + (" …" if len(stalled) > 4 else "")) if stalled else None
        rep.versions.append(VersionScan(label, bool(names), names, error=error, retried=retried.get(attr, [])))
        if error:
            rep.incomplete.append(f"{label} suites: {error}")
        for name in names:
            weak = suite_weakness(name)
            if weak and weak[0] == "broken":
                rep.weak_suites.setdefault(label, {})[name] = weak[1]
            elif weak:
                rep.no_forward_secrecy.setdefault(label, []).append(name)
    cert = out.certificate_info
    if cert.result is not None and cert.result.certificate_deployments:
        from cryptography.hazmat.primitives.serialization import Encoding

        leaf = cert.result.certificate_deployments[0].received_certificate_chain[0]
        rep.certificate = certificate_facts(leaf.public_bytes(Encoding.DER))
    elif cert.result is None:
        rep.certificate_error = _attempt_error(cert)
        rep.incomplete.append(f"certificate: {rep.certificate_error}")
    else:
        rep.certificate_error = "the server showed no certificate"
    for attr, setter in (("tls_compression", lambda r: setattr(rep, "compression", r.supports_compression)),
                         ("session_renegotiation", lambda r: (setattr(rep, "secure_renegotiation", r.supports_secure_renegotiation),
                                                             setattr(rep, "client_renegotiation_dos", r.is_vulnerable_to_client_renegotiation_dos))),
                         ("heartbleed", lambda r: setattr(rep, "heartbleed", r.is_vulnerable_to_heartbleed)),
                         ("openssl_ccs_injection", lambda r: setattr(rep, "ccs_injection", r.is_vulnerable_to_ccs_injection)),
                         ("robot", lambda r: setattr(rep, "robot", r.robot_result.name))):
        attempt = getattr(out, attr)
        if attempt.result is None:
            rep.incomplete.append(f"{attr.replace('_', ' ')}: {_attempt_error(attempt)}")
        else:
            setter(attempt.result)
    return rep


def _run(scanner_cls, request, concurrency: int):  # noqa: ANN001, ANN202 - sslyze's Scanner class, request and result
    """One sslyze scan of ``request`` with at most ``concurrency`` connections at a time; its result or None."""
    scanner = scanner_cls(per_server_concurrent_connections_limit=concurrency)
    with warnings.catch_warnings():  # sslyze's trust stores carry certificates cryptography warns about
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        results = list(scanner.get_results())
    return results[0] if results else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sslyze")
    except PackageNotFoundError:
        return "?"


def _attempt_error(attempt: object) -> str:
    reason = getattr(attempt, "error_reason", None)
    trace = getattr(attempt, "error_trace", None)
    text = f"{getattr(reason, 'name', reason) or 'not run'}"
    if trace is not None:
        text += f" ({_one_line(trace)})"
    return text


def _one_line(trace: object) -> str:
    """The last line of a traceback (sslyze keeps them), bounded and without control characters."""
    text = str(getattr(trace, "exc_type", "") or "")
    try:
        lines = [ln for ln in "".join(trace.format()).splitlines() if ln.strip()]  # type: ignore[attr-defined]
        text = lines[-1] if lines else text
    except Exception:  # noqa: BLE001 (best effort: a trace we cannot format is named by its type)
        pass
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)[:300]
