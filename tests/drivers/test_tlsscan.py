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


class StallingProxy:
    """A TCP proxy in front of a real TLS server that holds (answers nothing to) every
    ClientHello offering ``suite`` alone, as a device overwhelmed by concurrent handshakes, or
    stalling on one suite, does. With ``once`` only the first such hello per TLS version stalls."""

    def __init__(self, backend: int, suite: int, once: bool):
        import socket
        import threading

        self.backend, self.suite, self.once = backend, suite, once
        self.stalled: list[int] = []
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.lsock.close()

    def _hello(self, data: bytes) -> tuple[int, list[int]] | None:
        """(client_version, cipher suites) of a TLS ClientHello record, else None."""
        if len(data) < 44 or data[0] != 0x16 or data[5] != 0x01:
            return None
        body = data[9:]
        version = int.from_bytes(body[0:2], "big")
        sid = body[34]
        at = 35 + sid
        n = int.from_bytes(body[at:at + 2], "big")
        suites = [int.from_bytes(body[at + 2 + i:at + 4 + i], "big") for i in range(0, n, 2)]
        return version, [s for s in suites if s not in (0x00FF, 0x5600)]  # renegotiation and fallback signals are no suites

    def _serve(self, conn) -> None:  # noqa: ANN001
        import select
        import socket

        with conn:
            conn.settimeout(5)
            try:
                data = conn.recv(65536)
            except OSError:
                return
            hello = self._hello(data)
            if hello is not None and hello[1] == [self.suite] and not (self.once and hello[0] in self.stalled):
                self.stalled.append(hello[0])
                try:
                    conn.settimeout(15)
                    while conn.recv(65536):  # say nothing until the client gives up
                        pass
                except OSError:
                    pass
                return
            with socket.create_connection(("127.0.0.1", self.backend), timeout=5) as up:
                up.sendall(data)
                socks = [conn, up]
                for _ in range(10_000):
                    ready, _, _ = select.select(socks, [], [], 5)
                    if not ready:
                        return
                    for s in ready:
                        try:
                            chunk = s.recv(65536)
                        except OSError:
                            return
                        if not chunk:
                            return
                        (up if s is conn else conn).sendall(chunk)


RSA_AES128_SHA = 0x002F  # TLS_RSA_WITH_AES_128_CBC_SHA: the legacy server takes it over TLS 1.0 to 1.2


@pytest.mark.parametrize("once", [True, False], ids=["stalls-once", "stalls-always"])
def test_a_suite_whose_handshake_stalls_is_never_counted_as_rejected(pki, once: bool) -> None:
    """sslyze files a timed-out handshake among the rejected suites; a device that stalls would
    then hide its weak suites. The suite is scanned again alone: a stall that was the
    concurrency's shows the suite accepted; one that stays is that version not observed."""
    with served(tls_context(pki, "TLSv1", mutual=False, legacy=True)) as backend:
        proxy = StallingProxy(backend, RSA_AES128_SHA, once)
        try:
            rep = tlsscan.scan("127.0.0.1", proxy.port, timeout=2)
        finally:
            proxy.stop.set()
    assert proxy.stalled, "the proxy never saw the suite offered alone: the test would prove nothing"
    v10 = next(v for v in rep.versions if v.version == "TLSv1.0")
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in v10.retried
    if once:
        assert v10.error is None and "TLS_RSA_WITH_AES_128_CBC_SHA" in rep.no_forward_secrecy["TLSv1.0"]
    else:
        assert v10.error and "timed out" in v10.error and "TLS_RSA_WITH_AES_128_CBC_SHA" in v10.error
        assert "TLS_RSA_WITH_AES_128_CBC_SHA" not in rep.no_forward_secrecy.get("TLSv1.0", [])
        assert any(i.startswith("TLSv1.0 suites:") for i in rep.incomplete)
