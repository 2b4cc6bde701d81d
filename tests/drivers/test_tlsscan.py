"""sslyze's scan of real TLS servers on loopback: versions, every suite, the certificate,
the vulnerability tests, and what no handshake at all looks like."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers import tlsscan
from rig.sim.camera import make_pki, tls_context
from tests.drivers.test_tlsprobe import served


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"), "dut")


def test_modern_server_has_nothing_to_find(pki) -> None:
    with served(tls_context(pki, "TLSv1.2", mutual=False)) as port:
        rep = tlsscan.scan("127.0.0.1", port)
    assert rep.handshake and rep.accepted == ["TLSv1.2", "TLSv1.3"]
    assert rep.weak_suites == {} and rep.no_forward_secrecy == {}
    assert rep.certificate and rep.certificate.key == "EC secp256r1" and not rep.certificate.weaknesses
    assert (rep.heartbleed, rep.ccs_injection, rep.compression) == (False, False, False) and not rep.robot_vulnerable
    assert rep.secure_renegotiation is True and rep.incomplete == [] and rep.scanner.startswith("sslyze 6.")


def test_legacy_stack_beside_tls13_is_seen_suite_by_suite(pki) -> None:
    """An old firmware's TLS: 1.0 and static-RSA CBC suites, yet TLS 1.3 for a modern client."""
    with served(tls_context(pki, "TLSv1", mutual=False, legacy=True)) as port:
        rep = tlsscan.scan("127.0.0.1", port)
    assert rep.accepted == ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in rep.no_forward_secrecy["TLSv1.0"]
    assert rep.certificate and rep.certificate.key == "RSA 2048"
    assert rep.robot is not None and not rep.robot_vulnerable


def test_mutual_tls_server_is_scanned_with_the_configured_certificate(pki) -> None:
    with served(tls_context(pki, "TLSv1.2", mutual=True)) as port:
        rep = tlsscan.scan("127.0.0.1", port, client_cert=(pki["client-cert"], pki["client-key"]))
    assert rep.handshake and rep.accepted == ["TLSv1.2", "TLSv1.3"] and rep.incomplete == []


@pytest.mark.parametrize("kind", ["closed", "not-tls"])
def test_no_handshake_is_said_never_a_clean_report(kind: str) -> None:
    if kind == "closed":
        rep = tlsscan.scan("127.0.0.1", 9, timeout=1)
    else:  # something answers, but not TLS (a web server on a port believed to be HTTPS)
        with served(None, b"HTTP/1.0 400 Bad Request\r\n\r\n") as port:
            rep = tlsscan.scan("127.0.0.1", port, timeout=2)
    assert not rep.handshake and rep.accepted == [] and rep.error and "no TLS handshake" in rep.error
    assert "\n" not in rep.error and len(rep.error) < 400


LABELLED = [
    ("TLS_RSA_WITH_RC4_128_SHA", "broken"), ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "broken"), ("TLS_RSA_WITH_NULL_SHA256", "broken"),
    ("TLS_DH_anon_WITH_AES_128_CBC_SHA", "broken"), ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "broken"), ("TLS_RSA_WITH_DES_CBC_SHA", "broken"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", "no-forward-secrecy"), ("TLS_RSA_WITH_AES_256_GCM_SHA384", "no-forward-secrecy"),
    ("TLS_PSK_WITH_AES_128_GCM_SHA256", "no-forward-secrecy"), ("TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", "no-forward-secrecy"),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", None), ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", None),
    ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", None), ("TLS_AES_128_GCM_SHA256", None), ("TLS_CHACHA20_POLY1305_SHA256", None),
]


@pytest.mark.parametrize("name,expected", LABELLED)
def test_suite_weakness_on_labelled_names(name: str, expected: str | None) -> None:
    got = tlsscan.suite_weakness(name)
    assert (got[0] if got else None) == expected
